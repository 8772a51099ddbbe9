// Times Twilio's calculator on the benchmark bodies (tools/bench/bodies.json), for `make bench` to
// set beside smsdesk's own figures. Prints one JSON object: microseconds per call for each body.
const fs = require('fs');
const path = require('path');
const { SegmentedMessage } = require('sms-segments-calculator');

const bodies = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'bench', 'bodies.json'), 'utf8'));
const result = {};
for (const [name, text] of Object.entries(bodies)) {
  // Warm up the JIT, then time batches until at least a second has been measured.
  for (let i = 0; i < 200; i++) new SegmentedMessage(text, 'auto', false);
  let calls = 0;
  const start = process.hrtime.bigint();
  let elapsed = 0n;
  while (elapsed < 1_000_000_000n) {
    for (let i = 0; i < 50; i++) new SegmentedMessage(text, 'auto', false);
    calls += 50;
    elapsed = process.hrtime.bigint() - start;
  }
  result[name] = Number(elapsed) / 1000 / calls;
}
process.stdout.write(JSON.stringify(result) + '\n');
