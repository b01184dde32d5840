/** How long to wait before reconnect attempt `attempt` (1, 2, ...): exponential from
 * `baseMs`, capped at `maxMs`, with "equal jitter" (half fixed, half random) so that
 * many clients dropped by one server restart do not come back in one wave. */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, random = Math.random): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return ceiling / 2 + random() * (ceiling / 2);
}
