#!/usr/bin/env node
// Count the words of one document in JavaScript: a 1 per word, lower-cased (as count_map.py).
//
// An exec handler: it reads its input from the pipe numbered MR_INPUT_FD and writes its
// directive and pairs to the pipe numbered MR_OUTPUT_FD, one JSON array per line. What it
// prints is the invocation's captured output, never data.
//
// **
// argument_spec:
//     -
//         name: arguments
//         type: list
//
// handler_type: mapper
// required_capability: none
"use strict";
const fs = require("fs");

const input = JSON.parse(fs.readFileSync(Number(process.env.MR_INPUT_FD), "utf8"));
const lines = [["return"]];
for (const [name, text] of input.arguments) {
  const words = text.match(/[\p{L}\p{N}_]+/gu) ?? [];
  for (const word of words) {
    lines.push(["pair", word.toLowerCase(), 1]);
  }
  console.log(`${name}: ${words.length} words`);
}

const output = Buffer.from(lines.map((line) => JSON.stringify(line) + "\n").join(""));
for (let written = 0; written < output.length;) {
  written += fs.writeSync(Number(process.env.MR_OUTPUT_FD), output, written);
}
