"""Lists smsdesk's messages with Twilio's official Python library (filters and paging), changing
only the base URL. Prints one JSON object per step on standard output.

Environment: SMSDESK_URL, ACCOUNT_SID, API_KEY_ID, API_KEY_SECRET, TO, FROM, TODAY (YYYY-MM-DD).
"""

import datetime
import json
import os

from twilio.base.exceptions import TwilioException
from twilio.rest import Client

env = os.environ
client = Client(env["API_KEY_ID"], env["API_KEY_SECRET"], env["ACCOUNT_SID"])
client.api.base_url = env["SMSDESK_URL"]
today = datetime.date.fromisoformat(env["TODAY"])
midnight = datetime.datetime.combine(today, datetime.time(0, 0), tzinfo=datetime.timezone.utc)


def out(step, messages=None, **fields):
    if messages is not None:
        fields["sids"] = [m.sid for m in messages]
        fields["to"] = sorted({m.to for m in messages})
    print(json.dumps({"step": step, **fields}), flush=True)


out("all", client.messages.list())
out("to_paged", client.messages.list(to=env["TO"], page_size=2))
out("limit", client.messages.list(limit=3))
out("from", client.messages.list(from_=env["FROM"], page_size=4))
out(
    "sent_today",
    client.messages.list(to=env["TO"], date_sent_after=midnight, date_sent_before=midnight + datetime.timedelta(days=1)),
)
out("sent_on_day", client.messages.list(date_sent=midnight))
out("sent_long_ago", client.messages.list(date_sent=datetime.datetime(2001, 1, 1, tzinfo=datetime.timezone.utc)))
first = client.messages.page(page_size=4)
second = first.next_page()
out("pages", first=[m.sid for m in first], second=[m.sid for m in second], third=second.next_page() is None)
try:
    client.messages.list(to="+1415555")
    out("invalid", error=None)
except TwilioException as e:
    # A list's page that fails is raised with the HTTP answer attached.
    response = e.args[1]
    out("invalid", status=response.status_code, code=json.loads(response.text)["code"])
