//! Card-number (PAN) detection, so that no primary account number is ever stored (PCI DSS).
//!
//! Only a payment method token, the card brand and the last four digits may be kept. The
//! value types that end up in events ([`crate::values::PaymentMethodToken`],
//! [`crate::payment::AuthorizationId`]) refuse anything these functions flag, and the HTTP
//! layer reuses them to reject request bodies that carry a card number.

/// Shortest and longest PAN lengths (ISO/IEC 7812).
const PAN_DIGITS: std::ops::RangeInclusive<usize> = 13..=19;

/// True when the whole string looks like a card number: 13 to 19 digits, optionally grouped
/// with single spaces or dashes, passing the Luhn check.
pub fn looks_like_pan(text: &str) -> bool {
    let text = text.trim();
    if text.is_empty()
        || !text
            .chars()
            .all(|c| c.is_ascii_digit() || c == ' ' || c == '-')
    {
        return false;
    }
    digit_group_is_pan(text)
}

/// True when any part of the string looks like a card number (see [`looks_like_pan`]):
/// every maximal run of digits joined by single spaces, dashes or underscores is checked on
/// its own.
pub fn contains_pan(text: &str) -> bool {
    digit_runs(text).any(digit_group_is_pan)
}

/// Splits text into maximal runs of digits where single spaces or dashes may join digits.
fn digit_runs(text: &str) -> impl Iterator<Item = &str> {
    let bytes = text.as_bytes();
    let mut runs = Vec::new();
    let mut start: Option<usize> = None;
    let mut last_digit = 0;
    for (i, byte) in bytes.iter().enumerate() {
        if byte.is_ascii_digit() {
            if start.is_none() {
                start = Some(i);
            }
            last_digit = i;
            continue;
        }
        // '_' too: tokens and ids allow it, so it must not hide a grouped card number.
        let is_joiner = matches!(*byte, b' ' | b'-' | b'_')
            && start.is_some()
            && last_digit + 1 == i
            && bytes.get(i + 1).is_some_and(u8::is_ascii_digit);
        if is_joiner {
            continue;
        }
        if let Some(s) = start.take() {
            runs.push(&text[s..=last_digit]);
        }
    }
    if let Some(s) = start {
        runs.push(&text[s..=last_digit]);
    }
    runs.into_iter()
}

fn digit_group_is_pan(group: &str) -> bool {
    let digits: Vec<u32> = group.chars().filter_map(|c| c.to_digit(10)).collect();
    PAN_DIGITS.contains(&digits.len()) && luhn_valid(&digits)
}

/// The Luhn (mod 10) checksum used by every card number.
fn luhn_valid(digits: &[u32]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 {
                    doubled - 9
                } else {
                    doubled
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Appends the Luhn check digit to a digit string (test helper to build valid PANs).
    pub(crate) fn with_check_digit(body: &str) -> String {
        for check in 0..10 {
            let candidate = format!("{body}{check}");
            let digits: Vec<u32> = candidate.chars().filter_map(|c| c.to_digit(10)).collect();
            if luhn_valid(&digits) {
                return candidate;
            }
        }
        unreachable!("one of ten check digits is always valid")
    }

    #[test]
    fn detects_well_known_test_cards() {
        for pan in [
            "4242424242424242",
            "4242 4242 4242 4242",
            "4242-4242-4242-4242",
            "5555555555554444",
            "378282246310005",
            "6011111111111117",
            " 4000056655665556 ",
        ] {
            assert!(looks_like_pan(pan), "{pan}");
            assert!(contains_pan(pan), "{pan}");
        }
    }

    #[test]
    fn ignores_non_pans() {
        for text in [
            "4242424242424241", // Luhn fails
            "424242424242",     // too short
            "42424242424242424242",
            "tok_visa",
            "",
            "4242 4242 4242 424a",
        ] {
            assert!(!looks_like_pan(text), "{text}");
        }
        assert!(!contains_pan("order 550e8400-e29b-41d4-a716-446655440000"));
        assert!(!contains_pan("tok_visa"));
    }

    #[test]
    fn finds_pans_inside_text() {
        assert!(contains_pan("tok_4242424242424242"));
        assert!(contains_pan("card: 4242 4242 4242 4242, exp 12/30"));
        assert!(!contains_pan("card ending 4242"));
    }

    #[test]
    fn finds_pans_grouped_by_underscores() {
        // Tokens and authorization ids may hold '_', so it must not hide a card number.
        assert!(contains_pan("tok_4242_4242_4242_4242"));
        assert_eq!(
            crate::values::PaymentMethodToken::new("tok_4242_4242_4242_4242"),
            Err(crate::values::ValueError::PanNotAllowed)
        );
        assert!(!contains_pan("tok_visa_4242"));
    }

    proptest! {
        #[test]
        fn every_luhn_valid_digit_string_of_pan_length_is_flagged(body in "[1-9][0-9]{11,17}") {
            let pan = with_check_digit(&body);
            prop_assert!(looks_like_pan(&pan));
            let grouped: String = pan
                .chars()
                .enumerate()
                .flat_map(|(i, c)| (i > 0 && i % 4 == 0).then_some(' ').into_iter().chain([c]))
                .collect();
            prop_assert!(looks_like_pan(&grouped), "{}", grouped);
            let embedded = format!("tok_{pan}_x");
            prop_assert!(contains_pan(&embedded));
        }

        #[test]
        fn never_panics(text in "\\PC{0,64}") {
            let _ = looks_like_pan(&text);
            let _ = contains_pan(&text);
        }
    }
}
