// Dumps the calculator's two character tables as JSON, so that domain/src/segments/tables.rs can be
// generated from them (and checked against them) instead of being retyped by hand.
const path = require('path');
const lib = path.join(path.dirname(require.resolve('sms-segments-calculator')), 'libs');
const gsm = require(path.join(lib, 'UnicodeToGSM.js')).default;
const smart = require(path.join(lib, 'SmartEncodingMap.js')).default;
const gsmOut = Object.keys(gsm).map((k) => [Number(k), gsm[k]]).sort((a, b) => a[0] - b[0]);
const smartOut = Object.keys(smart)
  .map((k) => [k.codePointAt(0), k.length, smart[k]])
  .sort((a, b) => a[0] - b[0]);
process.stdout.write(JSON.stringify({ gsm: gsmOut, smart: smartOut }) + '\n');
