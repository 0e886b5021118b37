/** Reading the Prometheus text format that /metrics serves. */

/** Prometheus text as `name{labels}` (labels as written) → value; comments and blank lines skipped. */
export function parseMetrics(text: string): Map<string, number> {
  const series = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    series.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return series;
}
