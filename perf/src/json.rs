//! One flat JSON object, written by hand (perf/ takes no serde): keys are our own
//! identifiers, string values are escaped, non-finite floats become `null`.

use std::fmt::Write;

/// Builds `{"k": v, ...}` in insertion order.
#[derive(Debug, Default)]
pub struct Obj {
    out: String,
}

impl Obj {
    /// An empty object.
    pub fn new() -> Self {
        Self::default()
    }

    fn key(&mut self, k: &str) {
        self.out
            .push_str(if self.out.is_empty() { "{" } else { ", " });
        let _ = write!(self.out, "\"{k}\": ");
    }

    /// A string value.
    pub fn str(mut self, k: &str, v: &str) -> Self {
        self.key(k);
        self.out.push('"');
        for c in v.chars() {
            match c {
                '"' => self.out.push_str("\\\""),
                '\\' => self.out.push_str("\\\\"),
                c if (c as u32) < 0x20 => {
                    let _ = write!(self.out, "\\u{:04x}", c as u32);
                }
                c => self.out.push(c),
            }
        }
        self.out.push('"');
        self
    }

    /// An integer value.
    pub fn int(mut self, k: &str, v: u64) -> Self {
        self.key(k);
        let _ = write!(self.out, "{v}");
        self
    }

    /// A float value, rounded to `prec` decimals.
    pub fn float(mut self, k: &str, v: f64, prec: usize) -> Self {
        self.key(k);
        if v.is_finite() {
            let _ = write!(self.out, "{v:.prec$}");
        } else {
            self.out.push_str("null");
        }
        self
    }

    /// A nested object (or anything already JSON).
    pub fn raw(mut self, k: &str, json: &str) -> Self {
        self.key(k);
        self.out.push_str(json);
        self
    }

    /// The finished object.
    pub fn finish(mut self) -> String {
        if self.out.is_empty() {
            self.out.push('{');
        }
        self.out.push('}');
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_obj() {
        let inner = Obj::new().int("a", 1).finish();
        let s = Obj::new()
            .str("mode", "b\"u\\rst\n")
            .float("rate", 1.23456, 2)
            .float("nan", f64::NAN, 1)
            .raw("errors", &inner)
            .finish();
        assert_eq!(
            s,
            r#"{"mode": "b\"u\\rst\u000a", "rate": 1.23, "nan": null, "errors": {"a": 1}}"#
        );
        assert_eq!(Obj::new().finish(), "{}");
    }
}
