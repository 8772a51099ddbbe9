"""Drives smsdesk's Twilio-compatible endpoint with Twilio's official Python library, changing
only the base URL. Prints one JSON object per step on standard output.

Environment: SMSDESK_URL, ACCOUNT_SID, API_KEY_ID, API_KEY_SECRET, TO, BAD_TO.
"""

import json
import os
import sys

from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

env = os.environ
client = Client(env["API_KEY_ID"], env["API_KEY_SECRET"], env["ACCOUNT_SID"])
client.api.base_url = env["SMSDESK_URL"]


def out(step, **fields):
    print(json.dumps({"step": step, **fields}), flush=True)


message = client.messages.create(
    to=env["TO"], from_="+15005550006", body="SafeShipper: shipment SS-7 picked up 🚚"
)
out(
    "create",
    sid=message.sid,
    status=message.status,
    to=message.to,
    num_segments=message.num_segments,
    body=message.body,
    date_created=message.date_created.isoformat() if message.date_created else None,
)

fetched = client.messages(message.sid).fetch()
out("fetch", sid=fetched.sid, status=fetched.status, to=fetched.to)

try:
    client.messages.create(to=env["BAD_TO"], from_="+15005550006", body="hello")
    out("invalid", error=None)
except TwilioRestException as e:
    out("invalid", status=e.status, code=e.code, message=e.msg)

wrong = Client(env["API_KEY_ID"], "not-the-secret", env["ACCOUNT_SID"])
wrong.api.base_url = env["SMSDESK_URL"]
try:
    wrong.messages.create(to=env["TO"], from_="+15005550006", body="hello")
    out("unauthorized", error=None)
except TwilioRestException as e:
    out("unauthorized", status=e.status, code=e.code)

sys.exit(0)
