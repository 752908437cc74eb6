//! `fib`: F(n) as an exact integer of any size, by fast doubling.
//!
//! F(2k) = F(k)·(2F(k+1) − F(k)) and F(2k+1) = F(k)² + F(k+1)², walking the bits
//! of n from the top: O(log n) big multiplications. F(100 000) has 20 899 digits.
//! The JSON result is the bare decimal digits, which any JSON reader takes as an
//! integer (Python's `json` gives an exact `int`).

use num_bigint::BigUint;
use num_traits::{One, Zero};

use super::{params, Access, Context, Cost, Method};
use reactor_rpc_protocol::{Json, RpcError};

/// The largest n accepted.
pub(crate) const MAX_N: u64 = 100_000;

/// From this n up, `fib` runs on the worker pool when there is one. Measured
/// (BENCHMARKS.md, `cargo bench --bench dispatch -- fib`): F(5000) takes ~15 µs
/// and F(100 000) ~1.3 ms, while a hand-off to a worker costs a few µs (about a
/// whole ping); below the threshold computing inline is cheaper than handing off.
pub(crate) const HEAVY_FROM: u64 = 5_000;

/// The `fib` method: `params` is n, the result F(n) as a bare JSON integer.
pub(crate) struct Fib;

/// F(n), exactly: F(0) = 0, F(1) = 1, F(n) = F(n-1) + F(n-2).
///
/// ```
/// use reactor_rpc_core::service::fib::fib;
///
/// assert_eq!(fib(10).to_string(), "55");
/// assert_eq!(fib(100).to_string(), "354224848179261915075"); // past u64
/// ```
pub fn fib(n: u64) -> BigUint {
    // (a, b) = (F(k), F(k+1)), starting at k = 0.
    let mut a = BigUint::zero();
    let mut b = BigUint::one();
    for bit in (0..u64::BITS - n.leading_zeros()).rev() {
        let two_b_minus_a = (&b << 1usize) - &a;
        let c = &a * two_b_minus_a; // F(2k)
        let d = &a * &a + &b * &b; // F(2k+1)
        if n >> bit & 1 == 0 {
            (a, b) = (c, d);
        } else {
            b = &c + &d; // F(2k+2)
            a = d;
        }
    }
    a
}

fn parse_n(raw: Json<'_>) -> Result<u64, RpcError> {
    let n: u64 = params(raw).map_err(|_| {
        RpcError::bad_params(format!(
            "fib takes an integer n with 0 <= n <= {MAX_N}, got {}",
            raw.get()
        ))
    })?;
    if n > MAX_N {
        return Err(RpcError::bad_params(format!(
            "fib takes n <= {MAX_N}, got {n}"
        )));
    }
    Ok(n)
}

impl Method for Fib {
    fn call(&self, _cx: &Context<'_>, raw: Json<'_>, out: &mut Vec<u8>) -> Result<(), RpcError> {
        let n = parse_n(raw)?;
        out.extend_from_slice(fib(n).to_str_radix(10).as_bytes());
        Ok(())
    }

    fn cost(&self, raw: Json<'_>) -> Cost {
        match parse_n(raw) {
            Ok(n) if n >= HEAVY_FROM => Cost::Heavy,
            _ => Cost::Cheap,
        }
    }

    fn access(&self) -> Access {
        Access::Read
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The slow, obviously correct definition.
    fn fib_by_addition(n: u64) -> BigUint {
        let (mut a, mut b) = (BigUint::zero(), BigUint::one());
        for _ in 0..n {
            let next = &a + &b;
            a = std::mem::replace(&mut b, next);
        }
        a
    }

    #[test]
    fn matches_the_definition() {
        for n in (0..200).chain([1000, 4095, 4096, 4097]) {
            assert_eq!(fib(n), fib_by_addition(n), "F({n})");
        }
    }

    #[test]
    fn known_values() {
        assert_eq!(fib(0).to_string(), "0");
        assert_eq!(fib(1).to_string(), "1");
        assert_eq!(fib(10).to_string(), "55");
        assert_eq!(fib(93).to_string(), "12200160415121876738");
        assert_eq!(fib(100_000).to_string().len(), 20_899);
    }
}
