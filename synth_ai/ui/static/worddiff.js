// A word diff (longest common subsequence over whitespace-separated words), for the best
// prompt against the seed prompt. Prompts are short; past MAX_CELLS the table would cost too
// much, so the diff is then the whole old text removed and the whole new text added.
import { el } from "./common.js";

const MAX_CELLS = 4_000_000;

/** `[{op: "same" | "add" | "del", text}]`, adjacent words of one op joined by a space. */
export function wordDiff(before, after) {
  const a = before.split(/\s+/).filter(Boolean);
  const b = after.split(/\s+/).filter(Boolean);
  const ops = [];
  const push = (op, word) => {
    const last = ops[ops.length - 1];
    if (last && last.op === op) last.text += ` ${word}`;
    else ops.push({ op, text: word });
  };
  if ((a.length + 1) * (b.length + 1) > MAX_CELLS) {
    a.forEach((w) => push("del", w));
    b.forEach((w) => push("add", w));
    return ops;
  }
  const width = b.length + 1;
  const lcs = new Uint32Array((a.length + 1) * width); // lcs[i][j]: of a[i:] and b[j:]
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      lcs[i * width + j] =
        a[i] === b[j] ? lcs[(i + 1) * width + j + 1] + 1 : Math.max(lcs[(i + 1) * width + j], lcs[i * width + j + 1]);
    }
  }
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    if (a[i] === b[j]) {
      push("same", a[i]);
      i++;
      j++;
    } else if (lcs[(i + 1) * width + j] >= lcs[i * width + j + 1]) push("del", a[i++]);
    else push("add", b[j++]);
  }
  while (i < a.length) push("del", a[i++]);
  while (j < b.length) push("add", b[j++]);
  return ops;
}

/** The diff as text nodes, `<ins>` and `<del>` (marked + and − too, not by colour alone). */
export function diffNodes(before, after) {
  const nodes = [];
  for (const { op, text } of wordDiff(before, after)) {
    if (nodes.length) nodes.push(" ");
    if (op === "same") nodes.push(text);
    else if (op === "add") nodes.push(el("ins", { title: "added" }, text));
    else nodes.push(el("del", { title: "removed" }, text));
  }
  return nodes;
}
