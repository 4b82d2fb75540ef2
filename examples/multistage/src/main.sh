# greet [NAME...]: one greeting per name.
[ $# -gt 0 ] || set -- world
for name in "$@"; do
  greeting "$name"
done
