#!/usr/bin/env python3
"""Layer listings of an image for the fidelity corpus (fixtures/corpus), and their comparison.

Usage:
  corpus-layers.py list IMAGE                      # the listing as JSON on stdout
  corpus-layers.py expect IMAGE CASE_DIR [SOURCE]  # write CASE_DIR/expected.json from IMAGE (SOURCE: docker|reference)
  corpus-layers.py compare IMAGE CASE_DIR [--json] # differences from CASE_DIR/expected.json; exit 0 when they
                                                   # are exactly the case's knownDifferences (case.json)
IMAGE is an OCI image-layout archive (strata's type=oci) or a docker-archive (`docker save`, which keeps the
Docker-only config fields Healthcheck, OnBuild and Shell that a conversion to OCI drops).

A layer is its set of tar entries keyed by path ('./' and trailing '/' removed), each described as
  TYPE MODE UID:GID [SIZE sha256:HEX | -> SYMLINK | => HARDLINK | MAJOR,MINOR] [xattr:KEY=HEXVALUE ...]
TYPE f d l h c b p; MODE the permission bits (with suid/sgid/sticky) in octal; whiteouts are the entries
named .wh.NAME and .wh..wh..opq. Modification times are left out. Config: the runtime fields below and the top-level author (MAINTAINER). A layer equal to layer 0 of the
00-busybox-base case is written as {"sameAs": "00-busybox-base/0"} to keep the fixtures small.
"""
import gzip, hashlib, io, json, lzma, os, sys, tarfile

CONFIG_FIELDS = ['Env', 'Cmd', 'Entrypoint', 'WorkingDir', 'User', 'ExposedPorts', 'Volumes', 'Labels',
                 'StopSignal', 'Healthcheck', 'OnBuild', 'Shell']
CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'fixtures', 'corpus')
BASE_CASE, BASE_LAYER = '00-busybox-base', 0
TYPES = {tarfile.REGTYPE: 'f', tarfile.AREGTYPE: 'f', tarfile.DIRTYPE: 'd', tarfile.SYMTYPE: 'l',
         tarfile.LNKTYPE: 'h', tarfile.CHRTYPE: 'c', tarfile.BLKTYPE: 'b', tarfile.FIFOTYPE: 'p'}


def clean(name):
    while name.startswith('./'):
        name = name[2:]
    return name.rstrip('/')


def open_blob(data):
    """A layer blob, gzip, xz or uncompressed, as a tarfile."""
    if data[:2] == b'\x1f\x8b':
        data = gzip.decompress(data)
    elif data[:6] == b'\xfd7zXZ\x00':
        data = lzma.decompress(data)
    return tarfile.open(fileobj=io.BytesIO(data), mode='r:')


def describe(tar, member):
    kind = TYPES.get(member.type)
    if kind is None:
        raise SystemExit(f'{member.name}: unexpected tar entry type {member.type!r}')
    text = f'{kind} {member.mode & 0o7777:04o} {member.uid}:{member.gid}'
    if kind == 'f':
        text += f' {member.size} sha256:{hashlib.sha256(tar.extractfile(member).read()).hexdigest()}'
    elif kind == 'l':
        text += f' -> {member.linkname}'
    elif kind == 'h':
        text += f' => {clean(member.linkname)}'
    elif kind in 'cb':
        text += f' {member.devmajor},{member.devminor}'
    # tarfile decodes binary pax values with surrogateescape: encoding back gives the exact bytes
    xattrs = sorted((k[len('SCHILY.xattr.'):], v.encode('utf-8', 'surrogateescape').hex())
                    for k, v in member.pax_headers.items() if k.startswith('SCHILY.xattr.'))
    return text + ''.join(f' xattr:{k}={v}' for k, v in xattrs)


def layer_entries(data):
    entries = {}
    with open_blob(data) as tar:
        for member in tar:
            name = clean(member.name)
            if name in ('', '.'):
                continue
            if name in entries:
                raise SystemExit(f'{name}: twice in one layer')
            entries[name] = describe(tar, member)
    return dict(sorted(entries.items()))


def read_image(path):
    """(config JSON, [layer blob bytes]) of an OCI archive or a docker-archive."""
    with tarfile.open(path) as outer:
        names = set(outer.getnames())
        read = lambda name: outer.extractfile(name).read()
        if 'manifest.json' in names and 'index.json' not in names:
            manifest = json.loads(read('manifest.json'))
            if len(manifest) != 1:
                raise SystemExit(f'{path}: {len(manifest)} images in the docker-archive, expected 1')
            return json.loads(read(manifest[0]['Config'])), [read(l) for l in manifest[0]['Layers']]
        blob = lambda desc: read('blobs/' + desc['digest'].replace(':', '/'))
        node = json.loads(read('index.json'))
        while 'manifests' in node:
            if len(node['manifests']) != 1:
                raise SystemExit(f'{path}: {len(node["manifests"])} manifests in the index, expected 1')
            node = json.loads(blob(node['manifests'][0]))
        return json.loads(blob(node['config'])), [blob(l) for l in node['layers']]


def empty(value):
    return value is None or value == [] or value == {} or value == ''


def listing(path):
    config, blobs = read_image(path)
    runtime = config.get('config') or {}
    fields = {k: runtime.get(k) for k in CONFIG_FIELDS}
    fields['author'] = config.get('author')  # top level: what MAINTAINER sets
    return {
        # absent, null, "" and [] / {} mean the same to a runtime: all written as null
        'config': {k: None if empty(v) else v for k, v in fields.items()},
        'history': ['empty_layer' if h.get('empty_layer') else 'layer' for h in config.get('history', [])],
        'layers': [layer_entries(b) for b in blobs],
    }


def base_entries():
    with open(os.path.join(CORPUS, BASE_CASE, 'expected.json')) as f:
        return json.load(f)['layers'][BASE_LAYER]['entries']


def resolve(layer):
    if 'sameAs' in layer:
        case, index = layer['sameAs'].rsplit('/', 1)
        with open(os.path.join(CORPUS, case, 'expected.json')) as f:
            return resolve(json.load(f)['layers'][int(index)])
    return layer['entries']


def dump(expected):
    """JSON with one line per entry, so that a regenerated expectation diffs line by line."""
    text = json.dumps(expected, indent=2, sort_keys=False)
    return text + '\n'


def expect(image, case_dir, source):
    got = listing(image)
    is_base = os.path.basename(os.path.normpath(case_dir)) == BASE_CASE
    base = None if is_base else base_entries()
    layers = [{'sameAs': f'{BASE_CASE}/{BASE_LAYER}'} if base is not None and l == base else {'entries': l}
              for l in got['layers']]
    expected = {'source': source, 'config': got['config'], 'history': got['history'], 'layers': layers}
    with open(os.path.join(case_dir, 'expected.json'), 'w') as f:
        f.write(dump(expected))


def differences(got, expected):
    problems = []
    want = [resolve(l) for l in expected['layers']]
    if len(got['layers']) != len(want):
        problems.append(f"layers: got {len(got['layers'])}, expected {len(want)}")
    for i, (g, w) in enumerate(zip(got['layers'], want)):
        for name in sorted(set(w) - set(g)):
            problems.append(f'layer {i}: missing {name} ({w[name]})')
        for name in sorted(set(g) - set(w)):
            problems.append(f'layer {i}: extra {name} ({g[name]})')
        for name in sorted(n for n in set(g) & set(w) if g[n] != w[n]):
            problems.append(f'layer {i}: {name}: got ({g[name]}), expected ({w[name]})')
    if got['history'] != expected['history']:
        problems.append(f"history: got {got['history']}, expected {expected['history']}")
    for k in CONFIG_FIELDS + ['author']:
        if got['config'][k] != expected['config'].get(k):
            problems.append(f"config {k}: got {json.dumps(got['config'][k], sort_keys=True)}, "
                            f"expected {json.dumps(expected['config'].get(k), sort_keys=True)}")
    return problems


def compare(image, case_dir, as_json):
    with open(os.path.join(case_dir, 'expected.json')) as f:
        expected = json.load(f)
    case_file = os.path.join(case_dir, 'case.json')
    known = []
    if os.path.exists(case_file):
        with open(case_file) as f:
            known = [k['problem'] for k in json.load(f).get('knownDifferences', [])]
    problems = differences(listing(image), expected)
    unexpected = [p for p in problems if p not in known]
    stale = [k for k in known if k not in problems]
    if as_json:
        json.dump({'problems': problems, 'unexpected': unexpected, 'staleKnownDifferences': stale}, sys.stdout, indent=1)
        print()
    else:
        for p in problems:
            print(('known: ' if p in known else '') + p)
        for k in stale:
            print(f'known difference no longer seen: {k}')
        print('MATCH' if not unexpected and not stale else 'MISMATCH', f'problems={len(problems)} known={len(known)}')
    return 0 if not unexpected and not stale else 1


def main(argv):
    if len(argv) >= 2 and argv[0] == 'list':
        json.dump(listing(argv[1]), sys.stdout, indent=1)
        print()
        return 0
    if len(argv) in (3, 4) and argv[0] == 'expect':
        expect(argv[1], argv[2], argv[3] if len(argv) == 4 else 'docker')
        return 0
    if len(argv) in (3, 4) and argv[0] == 'compare':
        return compare(argv[1], argv[2], '--json' in argv[3:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
