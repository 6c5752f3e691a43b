//! The Prometheus gate: an instant query (`GET /api/v1/query`) whose one
//! value is compared to a threshold.
//!
//! The answer must be a `scalar` or a `vector` of exactly one sample; an
//! empty vector (the metric does not exist yet, or the selector matches
//! nothing), several series, NaN, a non-success status or an unreachable
//! server fail the gate. A query meant to cover several series aggregates
//! them itself (`sum(...)`), so the gate never guesses which one counts.

use super::gate::{Comparison, Gate, GateOutcome};
use super::http;

/// A PromQL query compared to a threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct PrometheusGate {
    /// The server's base URL (`http://prometheus:9090`, or with a path
    /// prefix); `/api/v1/query` is appended.
    pub url: String,
    /// The PromQL expression.
    pub query: String,
    /// How the value compares to the threshold for the gate to pass.
    pub op: Comparison,
    /// The threshold.
    pub threshold: f64,
}

impl PrometheusGate {
    /// The full query URL.
    pub fn query_url(&self) -> String {
        format!(
            "{}/api/v1/query?query={}",
            self.url.trim_end_matches('/'),
            http::encode_component(&self.query)
        )
    }

    /// Judges an answer of the query API (pure: status and body in).
    pub fn judge(&self, status: u16, body: &[u8]) -> GateOutcome {
        let name = self.name();
        match sample(status, body) {
            Err(why) => GateOutcome::fail(name, None, why),
            Ok(value) if value.is_nan() => GateOutcome::fail(
                name,
                Some("NaN".to_string()),
                format!("`{}` is NaN (a ratio over no requests?)", self.query),
            ),
            Ok(value) => {
                let observed = Some(format_value(value));
                let text = format!(
                    "`{}` = {} (wanted {} {})",
                    self.query,
                    format_value(value),
                    self.op,
                    format_value(self.threshold)
                );
                if self.op.holds(value, self.threshold) {
                    GateOutcome::pass(name, observed, text)
                } else {
                    GateOutcome::fail(name, observed, text)
                }
            }
        }
    }
}

/// `0.5`, `1`, `NaN`, `+Inf` as Prometheus writes them.
fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        format!("{v}")
    }
}

/// The one sample of an answer, or why there is none.
fn sample(status: u16, body: &[u8]) -> Result<f64, String> {
    let json: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        let text = String::from_utf8_lossy(body);
        let text: String = text.chars().take(200).collect();
        format!("HTTP {status}, not a Prometheus API answer ({e}): {text}")
    })?;
    if json["status"] != "success" || !(200..300).contains(&status) {
        return Err(format!(
            "HTTP {status}, Prometheus error {}: {}",
            json["errorType"].as_str().unwrap_or("unknown"),
            json["error"].as_str().unwrap_or("(no message)")
        ));
    }
    let data = &json["data"];
    let value = match data["resultType"].as_str() {
        Some("scalar") => &data["result"],
        Some("vector") => {
            let result = data["result"]
                .as_array()
                .ok_or("a vector answer without a result list")?;
            match result.as_slice() {
                [] => return Err("the query returned no data (an empty vector)".to_string()),
                [one] => &one["value"],
                many => {
                    return Err(format!(
                        "the query returned {} series; aggregate them to one (sum, avg, min...)",
                        many.len()
                    ));
                }
            }
        }
        other => {
            return Err(format!(
                "result type {} is not supported (want a vector or a scalar)",
                other.unwrap_or("(missing)")
            ));
        }
    };
    // A sample is [timestamp, "value"]; the value is a string so that
    // NaN and infinities survive JSON.
    let text = value[1]
        .as_str()
        .ok_or_else(|| format!("a sample without a value: {value}"))?;
    match text {
        "NaN" => Ok(f64::NAN),
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        t => t
            .parse()
            .map_err(|_| format!("sample value `{t}` is not a number")),
    }
}

#[async_trait::async_trait]
impl Gate for PrometheusGate {
    fn name(&self) -> String {
        format!(
            "prometheus `{}` {} {}",
            self.query,
            self.op,
            format_value(self.threshold)
        )
    }

    async fn check(&self) -> GateOutcome {
        match http::get(&self.query_url()).await {
            Ok(response) => self.judge(response.status, &response.body),
            Err(e) => GateOutcome::fail(self.name(), None, format!("cannot query Prometheus: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate() -> PrometheusGate {
        PrometheusGate {
            url: "http://127.0.0.1:9090/".to_string(),
            query: "up".to_string(),
            op: Comparison::Ge,
            threshold: 0.99,
        }
    }

    fn vector(values: &[&str]) -> String {
        let items: Vec<String> = values
            .iter()
            .map(|v| format!(r#"{{"metric":{{}},"value":[1700000000.1,"{v}"]}}"#))
            .collect();
        format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{}]}}}}"#,
            items.join(",")
        )
    }

    #[test]
    fn one_sample_is_compared() {
        let g = gate();
        assert_eq!(g.query_url(), "http://127.0.0.1:9090/api/v1/query?query=up");
        let ok = g.judge(200, vector(&["1"]).as_bytes());
        assert!(ok.passed, "{ok:?}");
        assert_eq!(ok.observed.as_deref(), Some("1"));
        let bad = g.judge(200, vector(&["0.5"]).as_bytes());
        assert!(!bad.passed);
        assert_eq!(bad.observed.as_deref(), Some("0.5"));
        assert!(bad.detail.contains("= 0.5 (wanted >= 0.99)"), "{}", bad.detail);
        let scalar = br#"{"status":"success","data":{"resultType":"scalar","result":[1.5,"0.995"]}}"#;
        assert!(g.judge(200, scalar).passed);
    }

    #[test]
    fn no_data_nan_errors_and_many_series_fail() {
        let g = gate();
        let empty = g.judge(200, vector(&[]).as_bytes());
        assert!(!empty.passed && empty.detail.contains("no data"), "{empty:?}");
        assert_eq!(empty.observed, None);
        let nan = g.judge(200, vector(&["NaN"]).as_bytes());
        assert!(!nan.passed && nan.observed.as_deref() == Some("NaN"), "{nan:?}");
        let many = g.judge(200, vector(&["1", "1"]).as_bytes());
        assert!(!many.passed && many.detail.contains("2 series"), "{many:?}");
        let error = br#"{"status":"error","errorType":"bad_data","error":"parse error"}"#;
        let e = g.judge(400, error);
        assert!(!e.passed && e.detail.contains("bad_data: parse error"), "{e:?}");
        let html = g.judge(502, b"<html>bad gateway</html>");
        assert!(!html.passed && html.detail.contains("HTTP 502"), "{html:?}");
        let matrix = br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert!(!g.judge(200, matrix).passed);
    }
}
