// Twilio's calculator as a line filter: JSON lines {"text": "...", "smart": bool} in, one JSON line out
// for each, with what smsdesk's domain crate is compared on. Dev-only (the differential test and the
// benchmark run it); smsdesk never ships or calls it.
const readline = require('readline');
const { SegmentedMessage } = require('sms-segments-calculator');
const UserDataHeader = require('sms-segments-calculator/dist/libs/UserDataHeader').default;

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
const out = [];
rl.on('line', (line) => {
  if (!line.trim()) return;
  const { text, smart } = JSON.parse(line);
  const m = new SegmentedMessage(text, 'auto', Boolean(smart));
  out.push(
    JSON.stringify({
      encoding: m.encodingName,
      segments: m.segmentsCount,
      characters: m.numberOfCharacters,
      unicode_scalars: m.numberOfUnicodeScalars,
      non_gsm: m.getNonGsmCharacters(),
      graphemes: m.graphemes,
      // Graphemes carried by each segment (user data header octets left out).
      segment_graphemes: m.segments.map((s) => s.filter((c) => !(c instanceof UserDataHeader)).length),
    }),
  );
});
rl.on('close', () => process.stdout.write(out.join('\n') + (out.length ? '\n' : '')));
