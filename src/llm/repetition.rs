//! The early stop of degenerate generations: an answer stuck repeating the
//! same block of tokens (`a, a, a, ...`, `AND x = 1 AND x = 1 ...`) would
//! otherwise run to `max_tokens`, about 20 s per answer on the 0.5B model
//! on 2 cores, and yield nothing a scorer can use.
//!
//! The rule: a generation is stopped as soon as its last `span` tokens are
//! one block of `period` tokens repeated, for some `period` from 1 to
//! [`MAX_PERIOD`], where `span = max(MIN_REPEATS * period, MIN_SPAN)`. So a
//! single token repeated [`MIN_SPAN`] times stops it, as does a 10-token block
//! repeated 8 times or a 40-token block repeated [`MIN_REPEATS`] times. Real
//! Spider SQL never repeats a block that many times (no gold query of dev
//! or train does: `tests` below and `tests/local_model.rs` check it), so the
//! rule cuts loops and nothing else. The text generated up to the stop is
//! kept; the completion records why it was cut ([`crate::llm::Completion::cut`]).
//!
//! The same rule also reads the text, byte by byte ([`degenerate_text`]:
//! blocks of up to [`TEXT_MAX_PERIOD`] bytes, at least [`TEXT_MIN_SPAN`]
//! bytes and [`MIN_REPEATS`] copies): under a grammar, the same text can
//! come out as different tokens from one copy to the next (the grammar masks
//! the model's first choice of token and it takes another split), so a loop
//! of text need not be a loop of tokens. Seen on the `constrained` rung:
//! `WHERE Id IN ( SELECT Id FROM car_makers` repeated to max_tokens.

/// The longest block the rule looks for, in tokens.
pub const MAX_PERIOD: usize = 48;
/// At least this many tokens of repetition before a stop.
pub const MIN_SPAN: usize = 64;
/// At least this many copies of the block.
pub const MIN_REPEATS: usize = 4;
/// The longest block of text the rule looks for, in bytes.
pub const TEXT_MAX_PERIOD: usize = 320;
/// At least this many bytes of repeated text before a stop.
pub const TEXT_MIN_SPAN: usize = 256;

/// The repetition that ends `tokens`, if the rule stops there: (period,
/// copies). Checked after every new token, so only tails that end at the
/// last token are looked at.
pub fn degenerate_tail<T: PartialEq>(tokens: &[T]) -> Option<(usize, usize)> {
    periodic_tail(tokens, MAX_PERIOD, MIN_SPAN)
}

/// The repetition that ends the text `bytes`, if the rule stops there:
/// (period in bytes, copies).
pub fn degenerate_text(bytes: &[u8]) -> Option<(usize, usize)> {
    periodic_tail(bytes, TEXT_MAX_PERIOD, TEXT_MIN_SPAN)
}

fn periodic_tail<T: PartialEq>(tokens: &[T], max_period: usize, min_span: usize) -> Option<(usize, usize)> {
    let n = tokens.len();
    (1..=max_period).find_map(|period| {
        let span = (MIN_REPEATS * period).max(min_span);
        if n < span {
            return None;
        }
        let tail = &tokens[n - span..];
        let periodic = (period..span).all(|i| tail[i] == tail[i - period]);
        periodic.then(|| (period, repeated_copies(tokens, period)))
    })
}

/// How many whole copies of the last `period` tokens end `tokens`.
fn repeated_copies<T: PartialEq>(tokens: &[T], period: usize) -> usize {
    let n = tokens.len();
    let matching = (period..n)
        .take_while(|&i| tokens[n - 1 - i] == tokens[n - 1 - i + period])
        .count();
    (matching + period) / period
}

/// The reason a completion records: "stopped: a block of 3 tokens repeated
/// 22 times".
pub fn describe(period: usize, copies: usize) -> String {
    let block = if period == 1 {
        "one token".to_string()
    } else {
        format!("a block of {period} tokens")
    };
    stopped(&block, copies)
}

/// The reason for a loop of text: "stopped early: 38 bytes of text
/// repeated 7 times".
pub fn describe_text(period: usize, copies: usize) -> String {
    stopped(&format!("{period} bytes of text"), copies)
}

fn stopped(block: &str, copies: usize) -> String {
    format!("stopped early: {block} repeated {copies} times (the repetition rule, src/llm/repetition.rs)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_token_stops_after_min_span_copies() {
        let mut t = vec![7; MIN_SPAN - 1];
        assert_eq!(degenerate_tail(&t), None);
        t.push(7);
        assert_eq!(degenerate_tail(&t), Some((1, MIN_SPAN)));
    }

    #[test]
    fn blocks_stop_after_their_span_and_not_before() {
        let block = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
        let mut t: Vec<i32> = vec![100, 101, 102];
        for _ in 0..6 {
            t.extend(block);
        }
        assert_eq!(degenerate_tail(&t), None, "60 tokens: under the span of 64");
        t.extend(&block[..4]);
        assert_eq!(degenerate_tail(&t), Some((10, 6)), "64 tokens of the block");
        // A 40-token block needs 4 copies (160 tokens).
        let long: Vec<i32> = (0..40).collect();
        let t: Vec<i32> = long.iter().cycle().take(159).copied().collect();
        assert_eq!(degenerate_tail(&t), None);
        let t: Vec<i32> = long.iter().cycle().take(160).copied().collect();
        assert_eq!(degenerate_tail(&t), Some((40, 4)));
    }

    #[test]
    fn ordinary_text_never_stops() {
        let sql = "SELECT T1.name , count(*) FROM singer AS T1 JOIN concert AS T2 ON T1.id = T2.singer_id \
                   WHERE T2.year = 2014 OR T2.year = 2015 GROUP BY T1.name HAVING count(*) > 1 ORDER BY T1.name";
        let words: Vec<&str> = sql.split_whitespace().collect();
        for end in 1..=words.len() {
            assert_eq!(degenerate_tail(&words[..end]), None);
        }
        let chars: Vec<char> = sql.chars().collect();
        for end in 1..=chars.len() {
            assert_eq!(degenerate_tail(&chars[..end]), None);
        }
    }

    #[test]
    fn a_loop_of_text_stops_whatever_its_tokens() {
        // (The start shares no end with the block, so the loop starts
        // right after it.)
        let start = "SELECT count(*) FROM model_list;";
        let copy = "WHERE Id IN ( SELECT Id FROM car_makers ";
        let mut text = String::from(start);
        while text.len() < start.len() + TEXT_MIN_SPAN {
            text.push_str(copy);
        }
        let short = &text.as_bytes()[..start.len() + TEXT_MIN_SPAN - 1];
        assert_eq!(degenerate_text(short), None, "under the span");
        let long = &text.as_bytes()[..start.len() + TEXT_MIN_SPAN];
        assert_eq!(degenerate_text(long).map(|t| t.0), Some(copy.len()));
        let sql = b"SELECT T1.name , count(*) FROM singer AS T1 JOIN concert AS T2 ON T1.id = T2.singer_id \
                    WHERE T2.year = 2014 OR T2.year = 2015 GROUP BY T1.name HAVING count(*) > 1";
        assert!((1..=sql.len()).all(|end| degenerate_text(&sql[..end]).is_none()));
    }

    #[test]
    fn the_reason_names_the_block_and_the_copies() {
        assert_eq!(
            describe(3, 22),
            "stopped early: a block of 3 tokens repeated 22 times (the repetition rule, src/llm/repetition.rs)"
        );
    }
}
