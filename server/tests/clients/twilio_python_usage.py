"""Reads smsdesk's spend with Twilio's official Python library's usage records, changing only the
base URL. Prints one JSON object per step on standard output.

Environment: SMSDESK_URL, ACCOUNT_SID, API_KEY_ID, API_KEY_SECRET, TODAY (YYYY-MM-DD).
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
yesterday = today - datetime.timedelta(days=1)
records = client.usage.records


def out(step, found):
    rows = [
        {
            "category": r.category,
            "count": r.count,
            "count_unit": r.count_unit,
            "usage": r.usage,
            "price": str(r.price),
            "price_unit": r.price_unit,
            "start_date": r.start_date.isoformat(),
            "end_date": r.end_date.isoformat(),
        }
        for r in found
    ]
    print(json.dumps({"step": step, "records": rows}), flush=True)


out("all_outbound", records.list(category="sms-outbound"))
out("daily", records.daily.list(category="sms", start_date=yesterday, end_date=today))
out("today", records.today.list())
out("yesterday", records.yesterday.list(category="sms-outbound"))
out("this_month", records.this_month.list(category="sms"))
out("all_time", records.all_time.list(category="sms"))
out("monthly", records.monthly.list(category="sms-outbound", start_date=yesterday))
out("calls", records.list(category="calls"))
first = records.daily.page(category="sms", start_date=yesterday, end_date=today, page_size=1)
second = first.next_page()
print(
    json.dumps(
        {
            "step": "pages",
            "first": [r.start_date.isoformat() for r in first],
            "second": [r.start_date.isoformat() for r in second],
            "third": second.next_page() is None,
        }
    ),
    flush=True,
)
try:
    records.list(start_date="last tuesday")
    print(json.dumps({"step": "invalid", "status": None}), flush=True)
except TwilioException as e:
    # A list's page that fails is raised with the HTTP answer attached.
    response = e.args[1]
    code = json.loads(response.text)["code"]
    print(json.dumps({"step": "invalid", "status": response.status_code, "code": code}), flush=True)
