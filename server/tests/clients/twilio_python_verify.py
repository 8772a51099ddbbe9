"""Runs Twilio Verify's whole flow against smsdesk with Twilio's official Python library, changing
only `client.verify.base_url`, and reads each code from smsdesk's simulator inbox the way a
developer without a phone would. Prints one JSON object per step on standard output; at
`{"step": "deliver"}` it waits for a line on standard input (the test has run the worker).

Environment: SMSDESK_URL, ACCOUNT_SID, API_KEY_ID, API_KEY_SECRET, NUMBERS (comma-separated E.164
numbers, at least six, none used before).
"""

import json
import os
import re
import sys

import requests
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

env = os.environ
base = env["SMSDESK_URL"]
client = Client(env["API_KEY_ID"], env["API_KEY_SECRET"], env["ACCOUNT_SID"])
client.verify.base_url = base
numbers = env["NUMBERS"].split(",")
auth = (env["API_KEY_ID"], env["API_KEY_SECRET"])


def out(step, **fields):
    print(json.dumps({"step": step, **fields}), flush=True)


def error(step, call):
    try:
        call()
        out(step, status=None, code=None)
    except TwilioRestException as e:
        out(step, status=e.status, code=e.code, message=e.msg)


def codes(to):
    """The codes the simulated phone `to` received, newest first."""
    answer = requests.get(f"{base}/simulator/inbox", params={"to": to}, auth=auth, timeout=10)
    answer.raise_for_status()
    found = []
    for m in answer.json()["messages"]:
        match = re.search(r"\b(\d{4,10})\b", m["body"])
        if match:
            found.append(match.group(1))
    return found


def wait_for_codes(to, count):
    """Asks the test to run smsdesk's worker (it is driven by hand: the test answers a line once
    the texts went out), then reads what `to` received."""
    print(json.dumps({"step": "deliver"}), flush=True)
    sys.stdin.readline()
    found = codes(to)
    if len(found) < count:
        raise SystemExit(f"{to} received {len(found)} codes, expected {count}")
    return found


verify = client.verify.v2
service = verify.services.create(friendly_name="SafeShipper", code_length=6)
out("service", sid=service.sid, friendly_name=service.friendly_name, code_length=service.code_length)
fetched = verify.services(service.sid).fetch()
out("service_fetch", sid=fetched.sid, date_created=fetched.date_created.isoformat())
svc = verify.services(service.sid)

# Start, read the code, start again (the same code), a wrong code, the right one.
to = numbers[0]
started = svc.verifications.create(to=to, channel="sms")
out(
    "start",
    sid=started.sid,
    status=started.status,
    valid=started.valid,
    to=started.to,
    channel=started.channel,
    attempts=len(started.send_code_attempts),
    date_created=started.date_created.isoformat(),
    lookup=started.lookup,
)
first = wait_for_codes(to, 1)
again = svc.verifications.create(to=to, channel="sms")
second = wait_for_codes(to, 2)
out("again", sid=again.sid, attempts=len(again.send_code_attempts), codes=len(second), same=second[0] == second[1])
code = second[0]
wrong = "000000" if code != "000000" else "111111"
checked = svc.verification_checks.create(to=to, code=wrong)
out("wrong", status=checked.status, valid=checked.valid, sid=checked.sid)
approved = svc.verification_checks.create(to=to, code=code)
out("approved", status=approved.status, valid=approved.valid, sid=approved.sid, to=approved.to)
error("fetch_after", lambda: svc.verifications(started.sid).fetch())
error("check_after", lambda: svc.verification_checks.create(to=to, code=code))

# By VerificationSid.
by_sid = svc.verifications.create(to=numbers[1], channel="sms")
code = wait_for_codes(numbers[1], 1)[0]
approved = svc.verification_checks.create(verification_sid=by_sid.sid, code=code)
out("by_sid", status=approved.status, valid=approved.valid)

# Cancel and approve by update.
pending = svc.verifications.create(to=numbers[2], channel="sms")
out("fetch_pending", status=svc.verifications(pending.sid).fetch().status)
canceled = svc.verifications(pending.sid).update(status="canceled")
out("canceled", status=canceled.status)
error("fetch_canceled", lambda: svc.verifications(pending.sid).fetch())
approve = svc.verifications.create(to=numbers[3], channel="sms")
out("approved_by_update", status=svc.verifications(approve.sid).update(status="approved").status)

# Five checks, then 60202 and the verification is gone.
tries = svc.verifications.create(to=numbers[4], channel="sms")
statuses = [svc.verification_checks.create(to=numbers[4], code="98765").status for _ in range(5)]
out("five_wrong", statuses=statuses)
error("sixth_check", lambda: svc.verification_checks.create(to=numbers[4], code="98765"))
error("after_max_checks", lambda: svc.verifications(tries.sid).fetch())

# Five sends to one number in ten minutes, then 60203.
for _ in range(5):
    svc.verifications.create(to=numbers[5], channel="sms")
error("sixth_send", lambda: svc.verifications.create(to=numbers[5], channel="sms"))

# Parameters.
error("bad_to", lambda: svc.verifications.create(to="+1415555", channel="sms"))
error("bad_channel", lambda: svc.verifications.create(to=numbers[0], channel="carrier-pigeon"))
error("long_name", lambda: verify.services.create(friendly_name="x" * 31))
error("code_length", lambda: verify.services.create(friendly_name="Ops", code_length=11))
error("no_target", lambda: svc.verification_checks.create(code="123456"))
error("short_code", lambda: svc.verification_checks.create(to=numbers[0], code="12"))
error("bad_status", lambda: svc.verifications(pending.sid).update(status="pending"))
error("unknown_service", lambda: verify.services("VA" + "0" * 32).fetch())
error(
    "unknown_service_start",
    lambda: verify.services("VA" + "0" * 32).verifications.create(to=numbers[0], channel="sms"),
)

wrong_key = Client(env["API_KEY_ID"], "not-the-secret", env["ACCOUNT_SID"])
wrong_key.verify.base_url = base
error("unauthorized", lambda: wrong_key.verify.v2.services(service.sid).fetch())
