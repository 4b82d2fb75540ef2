// What a build reports while it runs; renderers (plain, tty, json) turn these into output.
export type BuildEvent =
  | { type: 'build-start'; dockerfile: string; steps: number }
  | { type: 'note'; message: string }
  | { type: 'step-start'; step: number; total: number; stage: string; instruction: string; line: number }
  | { type: 'step-output'; step: number; stream: 'stdout' | 'stderr'; text: string }
  | { type: 'step-commit'; step: number; bytes: number }
  | { type: 'step-done'; step: number; layer?: { digest: string; size: number }; emptyLayer: boolean; cached: boolean; seconds: number }
  | { type: 'step-error'; step: number; message: string }
  | { type: 'export'; kind: string; dest: string }
  // A blob moving to or from a registry or archive; `done` also when it was skipped (already there, or mounted).
  | { type: 'blob'; action: 'pull' | 'push'; digest: string; bytes: number; total: number; state: 'progress' | 'done' | 'exists' | 'mounted' }
  | { type: 'build-done'; manifestDigest: string; configDigest: string; layers: number; size: number; seconds: number };

export type ProgressSink = (event: BuildEvent) => void;
