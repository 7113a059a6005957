// Node only (@sit/train/node): SIGINT / SIGTERM during fit.
/**
 * Catch `signals` while training: the first one calls `onStop` (training stops after the current
 * step and checkpoints); a second one removes the handlers and re-raises the signal, so that the
 * default action (terminating the process) happens for a user who insists. Returns a function that
 * removes the handlers, restoring whatever Node did before.
 */
export function installStopHandlers(
  signals: readonly NodeJS.Signals[],
  onStop: (signal: NodeJS.Signals) => void,
): () => void {
  const handlers = new Map<NodeJS.Signals, () => void>();
  let stopping = false;
  const remove = () => {
    for (const [sig, fn] of handlers) process.removeListener(sig, fn);
    handlers.clear();
  };
  for (const sig of signals) {
    const fn = () => {
      if (stopping) {
        remove();
        process.kill(process.pid, sig);
        return;
      }
      stopping = true;
      onStop(sig);
    };
    handlers.set(sig, fn);
    process.on(sig, fn);
  }
  return remove;
}
