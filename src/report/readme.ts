/**
 * Generated blocks in a README: the text between `<!-- report:NAME -->` and `<!-- /report:NAME -->` is
 * replaced, everything outside the markers is kept byte for byte, so the generated numbers are never typed by hand.
 */
export const markers = (name: string) => ({ start: `<!-- report:${name} -->`, end: `<!-- /report:${name} -->` });

/** `text` with each block (name → Markdown) between its markers; throws naming the first marker that is missing or repeated. */
export function spliceBlocks(text: string, blocks: ReadonlyMap<string, string>, source = 'README'): string {
  for (const [name, markdown] of blocks) {
    const { start, end } = markers(name);
    const i = text.indexOf(start);
    const j = text.indexOf(end);
    const pair = `put the pair ${start} … ${end} where the block should go`;
    if (i < 0) throw new Error(`${source}: marker ${start} is missing (${pair})`);
    if (j < 0) throw new Error(`${source}: marker ${end} is missing (${pair})`);
    if (text.indexOf(start, i + 1) >= 0 || text.indexOf(end, j + 1) >= 0) throw new Error(`${source}: marker ${start} or ${end} appears more than once`);
    if (j < i) throw new Error(`${source}: ${end} comes before ${start}`);
    text = `${text.slice(0, i + start.length)}\n${markdown.trimEnd()}\n${text.slice(j)}`;
  }
  return text;
}
