//! `e1000ctl --json`: each reply as one JSON document for scripts.
//!
//! The document is the reply's own fields (the protocol's types, through serde), with three
//! things made easier to use than the wire form: durations are seconds (a number), MAC
//! addresses are `aa:bb:cc:dd:ee:ff` strings, and `-S`'s statistics are an object keyed by
//! name (in the driver's order). A reply that only says "done" is `{}`.

use serde_json::{Map, Value};

use crate::format;
use crate::protocol::Reply;

/// The JSON document `e1000ctl --json` prints for `reply`.
pub fn reply(reply: &Reply) -> Value {
    let value = match reply {
        Reply::Done => return Value::Object(Map::new()),
        Reply::Stats { stats } => {
            let map: Map<String, Value> = stats
                .iter()
                .map(|(name, v)| (name.clone(), Value::from(*v)))
                .collect();
            return Value::Object(map);
        }
        Reply::SelfTest { results } => {
            let mut v = serde_json::json!({ "results": results });
            v["pass"] = Value::Bool(results.iter().all(|r| r.result == 0));
            v
        }
        Reply::Link(l) => {
            let mut v = to_value(l);
            v["mac"] = Value::String(format::mac(l.mac));
            v
        }
        other => to_value(other),
    };
    let mut value = value;
    if let Value::Object(map) = &mut value {
        // The protocol's tag, not part of the reply's content.
        map.remove("reply");
    }
    seconds(&mut value);
    value
}

fn to_value<T: serde::Serialize>(v: &T) -> Value {
    // The protocol's types are plain data: serialising them cannot fail.
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Replaces every `{"secs": S, "nanos": N}` (serde's form of a `Duration`) with S.N
/// seconds, anywhere in `v`.
fn seconds(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if map.len() == 2 {
                if let (Some(s), Some(n)) = (
                    map.get("secs").and_then(Value::as_u64),
                    map.get("nanos").and_then(Value::as_u64),
                ) {
                    *v = Value::from(s as f64 + n as f64 * 1e-9);
                    return;
                }
            }
            map.values_mut().for_each(seconds);
        }
        Value::Array(items) => items.iter_mut().for_each(seconds),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::protocol::{PingReport, TestResult};

    #[test]
    fn statistics_are_an_object_by_name() {
        let v = reply(&Reply::Stats {
            stats: vec![("rx_packets".into(), 7), ("tx_packets".into(), 9)],
        });
        assert_eq!(v["rx_packets"], 7);
        assert_eq!(v["tx_packets"], 9);
    }

    #[test]
    fn durations_become_seconds_and_the_tag_goes() {
        let v = reply(&Reply::Ping(PingReport {
            sent: 2,
            replies: vec![Some(Duration::from_micros(1500)), None],
        }));
        assert_eq!(v.get("reply"), None);
        assert_eq!(v["sent"], 2);
        assert!((v["replies"][0].as_f64().unwrap() - 0.0015).abs() < 1e-12);
        assert!(v["replies"][1].is_null());
    }

    #[test]
    fn self_test_says_pass_or_fail() {
        let r = |result| TestResult {
            name: "register test (offline)".into(),
            result,
        };
        assert_eq!(
            reply(&Reply::SelfTest {
                results: vec![r(0)]
            })["pass"],
            true
        );
        assert_eq!(
            reply(&Reply::SelfTest {
                results: vec![r(0), r(1)]
            })["pass"],
            false
        );
        assert_eq!(reply(&Reply::Done), serde_json::json!({}));
    }
}
