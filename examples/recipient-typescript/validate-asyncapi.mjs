// Validates an AsyncAPI document with the official parser (@asyncapi/parser): the document given as the first
// argument (a file or an http(s) URL, e.g. the routing service's /asyncapi.json), else ../../docs/asyncapi.yaml.
// Prints each finding; exits 1 on an error, 0 when the document is valid.
import { readFile } from "node:fs/promises";
import { Parser } from "@asyncapi/parser";

const source = process.argv[2] ?? new URL("../../docs/asyncapi.yaml", import.meta.url).pathname;
const text = /^https?:/.test(source) ? await (await fetch(source)).text() : await readFile(source, "utf8");
const { document, diagnostics } = await new Parser().parse(text);
const errors = diagnostics.filter((d) => d.severity === 0);
for (const d of diagnostics) {
  const level = ["error", "warning", "information", "hint"][d.severity];
  console.log(`${level}: ${d.message} at ${d.path.join(".") || "(document)"}`);
}
if (document === undefined || errors.length > 0) {
  console.log(`INVALID: ${errors.length} error(s)`);
  process.exit(1);
}
console.log(`VALID: AsyncAPI ${document.version()}, ${document.allMessages().length} messages`);
