//! SQL result values, as [`super::sandbox`] returns them, with the semantics
//! of Python's `sqlite3` + the official evaluator: Python `==`/`hash`
//! equality (so `1 == 1.0`), and the `str(v) + str(type(v))` sort key that
//! `exec_eval.unorder_row` uses.

use std::hash::{Hash, Hasher};

/// One row of a query result.
pub type Row = Vec<Value>;

/// One cell of a query result, as Python's `sqlite3` returns it.
#[derive(Clone, Debug)]
pub enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// Exact comparison of an integer and a float, as Python does it
/// (no rounding of the integer to a float).
fn int_eq_float(i: i64, f: f64) -> bool {
    // 2^63 as f64 is exact; anything at or beyond it cannot equal an i64.
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    f.fract() == 0.0 && (-TWO_63..TWO_63).contains(&f) && f as i64 == i
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        use Value::*;
        match (self, other) {
            (Null, Null) => true,
            (Int(a), Int(b)) => a == b,
            (Real(a), Real(b)) => a == b,
            (Int(a), Real(b)) | (Real(b), Int(a)) => int_eq_float(*a, *b),
            (Text(a), Text(b)) => a == b,
            (Blob(a), Blob(b)) => a == b,
            _ => false,
        }
    }
}

// SQLite never returns NaN (it becomes NULL), so `==` is an equivalence here.
impl Eq for Value {}

impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            Value::Null => 0u8.hash(state),
            Value::Int(i) => (1u8, *i).hash(state),
            Value::Real(f) => {
                // Integral floats hash like the equal integer (Python does too).
                const TWO_63: f64 = 9_223_372_036_854_775_808.0;
                if f.fract() == 0.0 && (-TWO_63..TWO_63).contains(f) {
                    (1u8, *f as i64).hash(state)
                } else {
                    (2u8, f.to_bits()).hash(state)
                }
            }
            Value::Text(s) => (3u8, s).hash(state),
            Value::Blob(b) => (4u8, b).hash(state),
        }
    }
}

impl Value {
    /// `str(v) + str(type(v))`, the key `unorder_row` sorts a row's cells by.
    pub fn py_sort_key(&self) -> String {
        match self {
            Value::Null => "None<class 'NoneType'>".to_string(),
            Value::Int(i) => format!("{i}<class 'int'>"),
            Value::Real(f) => format!("{}<class 'float'>", py_float_repr(*f)),
            Value::Text(s) => format!("{s}<class 'str'>"),
            Value::Blob(b) => format!("{}<class 'bytes'>", py_bytes_repr(b)),
        }
    }

    /// A JSON rendering for reports (not used for comparisons).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Int(i) => (*i).into(),
            Value::Real(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or_else(|| py_float_repr(*f).into()),
            Value::Text(s) => s.clone().into(),
            Value::Blob(b) => py_bytes_repr(b).into(),
        }
    }
}

/// Python's `repr(float)`: the shortest round-trip digits, in fixed notation
/// when the decimal exponent is in (-4, 16], scientific otherwise.
pub fn py_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.into();
    }
    // Rust's `{:e}` prints the same shortest round-trip digits as Python.
    let sci = format!("{:e}", f);
    let (mantissa, exp) = sci.split_once('e').expect("{:e} always has an exponent");
    let exp: i32 = exp.parse().expect("exponent is an integer");
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let decpt = exp + 1; // value = 0.DIGITS * 10^decpt
    if -4 < decpt && decpt <= 16 {
        let n = digits.len() as i32;
        let body = if decpt <= 0 {
            format!("0.{}{}", "0".repeat((-decpt) as usize), digits)
        } else if decpt >= n {
            format!("{}{}.0", digits, "0".repeat((decpt - n) as usize))
        } else {
            format!("{}.{}", &digits[..decpt as usize], &digits[decpt as usize..])
        };
        format!("{sign}{body}")
    } else {
        let frac = if digits.len() > 1 {
            format!(".{}", &digits[1..])
        } else {
            String::new()
        };
        let e = decpt - 1;
        let esign = if e < 0 { '-' } else { '+' };
        format!("{sign}{}{frac}e{esign}{:02}", &digits[..1], e.abs())
    }
}

/// Python's `repr(bytes)`.
pub fn py_bytes_repr(b: &[u8]) -> String {
    let quote = if b.contains(&b'\'') && !b.contains(&b'"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(b.len() + 3);
    out.push('b');
    out.push(quote);
    for &c in b {
        match c {
            b'\\' => out.push_str("\\\\"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            c if c as char == quote => {
                out.push('\\');
                out.push(quote)
            }
            0x20..=0x7e => out.push(c as char),
            _ => out.push_str(&format!("\\x{c:02x}")),
        }
    }
    out.push(quote);
    out
}

/// `bytes.decode("utf-8", errors="ignore")`, the text factory the official
/// evaluator installs: invalid sequences are dropped, not replaced.
pub fn decode_utf8_ignore(mut bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    loop {
        match std::str::from_utf8(bytes) {
            Ok(s) => {
                out.push_str(s);
                return out;
            }
            Err(e) => {
                let (valid, rest) = bytes.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(valid).expect("checked valid"));
                match e.error_len() {
                    Some(n) => bytes = &rest[n..],
                    None => return out,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_repr_matches_python() {
        let cases = [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (-2.5, "-2.5"),
            (1e16, "1e+16"),
            (1234567890123456.0, "1234567890123456.0"),
            (12345678901234567.0, "1.2345678901234568e+16"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (123.456, "123.456"),
            (-0.0, "-0.0"),
            (1e100, "1e+100"),
            (f64::INFINITY, "inf"),
        ];
        for (f, want) in cases {
            assert_eq!(py_float_repr(f), want, "repr of {f:?}");
        }
    }

    #[test]
    fn python_equality_and_hash() {
        use std::collections::HashSet;
        assert_eq!(Value::Int(1), Value::Real(1.0));
        assert_ne!(Value::Int(1), Value::Text("1".into()));
        assert_ne!(Value::Text(String::new()), Value::Null);
        assert_ne!(Value::Int(9_007_199_254_740_993), Value::Real(9_007_199_254_740_992.0));
        let set: HashSet<Value> = [Value::Int(3), Value::Real(3.0)].into_iter().collect();
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn sort_key_distinguishes_int_and_float() {
        assert_eq!(Value::Int(1).py_sort_key(), "1<class 'int'>");
        assert_eq!(Value::Real(1.0).py_sort_key(), "1.0<class 'float'>");
        assert_eq!(Value::Blob(b"a'b".to_vec()).py_sort_key(), "b\"a'b\"<class 'bytes'>");
        assert_eq!(Value::Blob(vec![0, 255]).py_sort_key(), "b'\\x00\\xff'<class 'bytes'>");
    }

    #[test]
    fn utf8_ignore_drops_invalid_bytes() {
        assert_eq!(decode_utf8_ignore(b"a\xffb\xe2\x82"), "ab");
        assert_eq!(decode_utf8_ignore("é".as_bytes()), "é");
    }
}
