//! Moments, as tables show them: in the viewer's time zone once the page is hydrated, in UTC
//! before.

use leptos::prelude::*;

/// A moment, shown in the viewer's time zone. The server renders it in UTC (it does not know the
/// zone); once the page is hydrated the browser rewrites it in its own zone and locale. The
/// `datetime` attribute and the tooltip keep the UTC time.
#[component]
pub fn LocalTime(micros: i64) -> impl IntoView {
    let node = NodeRef::<leptos::html::Time>::new();
    let utc = format_time(micros);
    Effect::new(move |_| {
        if let Some(el) = node.get() {
            let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64((micros / 1_000) as f64));
            // Day and minute, in the viewer's locale and zone: "24 Nov 2026, 8:14 pm".
            let options = js_sys::Object::new();
            let _ = js_sys::Reflect::set(&options, &"dateStyle".into(), &"medium".into());
            let _ = js_sys::Reflect::set(&options, &"timeStyle".into(), &"short".into());
            let local: String = date.to_locale_string("default", &options).into();
            el.set_text_content(Some(&local));
        }
    });
    let title = utc.clone();
    view! { <time node_ref=node datetime=iso8601(micros) title=title>{utc}</time> }
}

/// `2026-11-24T19:05:00Z`.
fn iso8601(micros: i64) -> String {
    let text = format_time(micros);
    let (date, rest) = text.split_once(' ').unwrap_or((&text, ""));
    let time = rest.trim_end_matches(" UTC");
    format!("{date}T{time}:00Z")
}

/// Formats a UTC timestamp (microseconds) for tables: `2026-11-24 19:05 UTC`.
pub fn format_time(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm), so the browser build
    // needs no date library.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3_600,
        (rem % 3_600) / 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_format_as_utc_dates() {
        assert_eq!(super::format_time(0), "1970-01-01 00:00 UTC");
        assert_eq!(
            super::format_time(1_795_546_800_000_000),
            "2026-11-24 19:00 UTC"
        );
        assert_eq!(
            super::format_time(951_782_400_000_000),
            "2000-02-29 00:00 UTC"
        );
    }
}
