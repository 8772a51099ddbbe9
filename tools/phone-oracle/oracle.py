#!/usr/bin/env python3
"""Differential oracle for smsdesk's phone number parsing (dev only).

Reads JSON lines {"input": str, "region": str | null} on stdin and prints one JSON line per
input with what Google's libphonenumber (Python port `phonenumbers`, pinned in
requirements.txt to the metadata version the `phonenumber` crate ships) says about it:

    {"valid": bool, "e164": str | null, "region": str | null, "type": str | null,
     "cc": int | null, "nsn": str | null, "source": str | null, "error": str | null}

`type` uses smsdesk's snake_case names (mobile, fixed_line, ...). `source` is where the country
code came from (plus, idd, number_without_plus, default_region); `domain/tests/phone_oracle.rs`
uses it to tell inputs libphonenumber rewrites (which smsdesk refuses on purpose) from the rest.
A parse exception counts as invalid. Install: see tools/phone-oracle/README.md.
"""

import json
import sys

import phonenumbers
from phonenumbers import PhoneNumberType as T
from phonenumbers.phonenumber import CountryCodeSource as S

TYPES = {
    T.FIXED_LINE: "fixed_line",
    T.MOBILE: "mobile",
    T.FIXED_LINE_OR_MOBILE: "fixed_line_or_mobile",
    T.TOLL_FREE: "toll_free",
    T.PREMIUM_RATE: "premium_rate",
    T.SHARED_COST: "shared_cost",
    T.VOIP: "voip",
    T.PERSONAL_NUMBER: "personal_number",
    T.PAGER: "pager",
    T.UAN: "uan",
    T.VOICEMAIL: "voicemail",
    T.UNKNOWN: "unknown",
}

SOURCES = {
    S.FROM_NUMBER_WITH_PLUS_SIGN: "plus",
    S.FROM_NUMBER_WITH_IDD: "idd",
    S.FROM_NUMBER_WITHOUT_PLUS_SIGN: "number_without_plus",
    S.FROM_DEFAULT_COUNTRY: "default_region",
}


def answer(text, region):
    empty = {"valid": False, "e164": None, "region": None, "type": None,
             "cc": None, "nsn": None, "source": None, "error": None}
    try:
        number = phonenumbers.parse(text, region, keep_raw_input=True)
    except phonenumbers.NumberParseException as err:
        return dict(empty, error=str(err))
    valid = phonenumbers.is_valid_number(number)
    return {
        "valid": valid,
        "e164": phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
        "region": phonenumbers.region_code_for_number(number),
        "type": TYPES.get(phonenumbers.number_type(number), "unknown"),
        "cc": number.country_code,
        "nsn": phonenumbers.national_significant_number(number),
        "source": SOURCES.get(number.country_code_source),
        "error": None,
    }


def main():
    if sys.argv[1:] == ["--version"]:
        print(phonenumbers.__version__)
        return
    out = sys.stdout
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        query = json.loads(line)
        out.write(json.dumps(answer(query["input"], query.get("region"))) + "\n")
    out.flush()


if __name__ == "__main__":
    main()
