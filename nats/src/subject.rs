//! Subject tokens from arbitrary ids.

/// Makes `raw` a single, reversible NATS subject token: `.`, `*`, `>`, `%`, whitespace and
/// control characters are percent-encoded (a SKU such as `TSHIRT.L` stays one token).
pub fn encode_token(raw: &str) -> String {
    if raw.is_empty() {
        return "%00".into();
    }
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        if matches!(c, '.' | '*' | '>' | '%') || c.is_whitespace() || c.is_control() {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_plain_ids_and_encodes_subject_syntax() {
        assert_eq!(encode_token("Order"), "Order");
        assert_eq!(encode_token("3f2c-11"), "3f2c-11");
        assert_eq!(encode_token("TSHIRT.L"), "TSHIRT%2EL");
        assert_eq!(encode_token("a b*>%"), "a%20b%2A%3E%25");
        assert_eq!(encode_token(""), "%00");
    }
}
