//! What the load generator sends, and what it expects back.
//!
//! Requests are written from pre-encoded pieces straight into a connection's
//! output buffer: only the sequence `id` (and for the cache the key) changes
//! from one request to the next. The `id` has a fixed width, so a response is
//! checked by comparing bytes with the expected one (`out`, `result` and `id`
//! in one `memcmp`-like pass); only a response that differs is parsed, to say
//! exactly what was wrong with it.

use serde::Deserialize;
use serde_json::value::RawValue;

use reactor_rpc::protocol::frame::{begin_frame, end_frame};

/// Sequence ids start here so that they all have [`ID_WIDTH`] digits.
const ID_BASE: u64 = 1_000_000_000_000;
/// Digits in every request id.
const ID_WIDTH: usize = 13;

/// Which requests to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// `ping` with a short string param.
    Ping,
    /// `fib` with `--fib-n`.
    Fib,
    /// `get`/`set` mix over `--keys` keys.
    Cache,
}

/// One kind of request in flight, so its response can be checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Ping,
    Fib,
    Get,
    Set,
}

/// How a response compared with what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Right `out`, right `result`, right `id`. `hit` tells a `get` that found its key.
    Ok { hit: bool },
    /// An error response, with its code.
    ErrorResponse(String),
    /// The `out` field was not the one expected.
    WrongOut(String),
    /// The `id` was not the one of the oldest request in flight.
    OutOfOrder,
    /// Right `out` and `id`, wrong `result`.
    WrongResult,
    /// Not a response at all.
    Malformed,
}

/// The shape of a workload, from the command line.
#[derive(Debug, Clone)]
pub struct Spec {
    pub kind: Kind,
    /// Method name for `ping` (a test hook: an unknown name makes every response an error).
    pub ping_method: String,
    pub ping_param: String,
    pub fib_n: u64,
    pub keys: u64,
    pub value_size: usize,
    pub read_ratio: f64,
}

/// Pre-encoded request pieces and expected responses, shared by every connection.
pub struct Workload {
    kind: Kind,
    keys: u64,
    /// `read_ratio` scaled to `u32::MAX`, compared with a random `u32`.
    read_threshold: u32,
    /// Whole ping / fib request body up to the id.
    fixed_head: Vec<u8>,
    get_head: Vec<u8>,
    set_head: Vec<u8>,
    /// `"},"value":"xxx…"},"id":` after the key of a set.
    set_tail: Vec<u8>,
    /// Expected response bodies up to the id, per op.
    expect_fixed: Vec<u8>,
    expect_set: Vec<u8>,
    expect_get_hit: Vec<u8>,
    expect_get_miss: Vec<u8>,
}

impl Workload {
    pub fn new(spec: &Spec) -> Workload {
        let param = serde_json::to_string(&spec.ping_param).unwrap_or_else(|_| "\"\"".into());
        let method = serde_json::to_string(&spec.ping_method).unwrap_or_else(|_| "\"\"".into());
        let (fixed_head, expect_fixed) = match spec.kind {
            Kind::Fib => (
                format!("{{\"in\":\"fib\",\"params\":{},\"id\":", spec.fib_n),
                format!(
                    "{{\"out\":\"fib\",\"result\":{},\"id\":",
                    reactor_rpc::service::fib::fib(spec.fib_n)
                ),
            ),
            _ => (
                format!("{{\"in\":{method},\"params\":{param},\"id\":"),
                format!("{{\"out\":\"pong\",\"result\":{param},\"id\":"),
            ),
        };
        let value = format!("\"{}\"", "x".repeat(spec.value_size));
        Workload {
            kind: spec.kind,
            keys: spec.keys.max(1),
            read_threshold: (spec.read_ratio.clamp(0.0, 1.0) * f64::from(u32::MAX)) as u32,
            fixed_head: fixed_head.into_bytes(),
            get_head: b"{\"in\":\"get\",\"params\":{\"key\":\"k".to_vec(),
            set_head: b"{\"in\":\"set\",\"params\":{\"key\":\"k".to_vec(),
            set_tail: format!("\",\"value\":{value}}},\"id\":").into_bytes(),
            expect_fixed: expect_fixed.into_bytes(),
            expect_set: b"{\"out\":\"set\",\"result\":true,\"id\":".to_vec(),
            expect_get_hit: format!("{{\"out\":\"get\",\"result\":{value},\"id\":").into_bytes(),
            expect_get_miss: b"{\"out\":\"get\",\"result\":null,\"id\":".to_vec(),
        }
    }

    /// Appends one request frame with sequence number `seq` to `out`.
    #[inline]
    pub fn write_request(&self, rng: &mut Rng, seq: u64, out: &mut Vec<u8>) -> Op {
        let start = begin_frame(out);
        let op = match self.kind {
            Kind::Ping | Kind::Fib => {
                out.extend_from_slice(&self.fixed_head);
                if self.kind == Kind::Ping {
                    Op::Ping
                } else {
                    Op::Fib
                }
            }
            Kind::Cache => {
                let r = rng.next_u64();
                let key = (r >> 32) % self.keys;
                if (r as u32) < self.read_threshold {
                    out.extend_from_slice(&self.get_head);
                    write_digits(out, key);
                    out.extend_from_slice(b"\"},\"id\":");
                    Op::Get
                } else {
                    out.extend_from_slice(&self.set_head);
                    write_digits(out, key);
                    out.extend_from_slice(&self.set_tail);
                    Op::Set
                }
            }
        };
        write_id(out, seq);
        out.push(b'}');
        end_frame(out, start);
        op
    }

    /// Checks one response body against the request `op` with sequence `seq`.
    #[inline]
    pub fn check(&self, op: Op, seq: u64, body: &[u8]) -> Verdict {
        let (expected, hit) = match op {
            Op::Ping | Op::Fib => (&self.expect_fixed, false),
            Op::Set => (&self.expect_set, false),
            Op::Get if body.len() == self.expect_get_hit.len() + ID_WIDTH + 1 => {
                (&self.expect_get_hit, true)
            }
            Op::Get => (&self.expect_get_miss, false),
        };
        if body.len() == expected.len() + ID_WIDTH + 1
            && body.starts_with(expected)
            && body[expected.len()..body.len() - 1] == id_digits(seq)
            && body.last() == Some(&b'}')
        {
            return Verdict::Ok { hit };
        }
        self.diagnose(op, seq, body)
    }

    /// The slow path: parse the response to say what is wrong with it.
    #[cold]
    fn diagnose(&self, op: Op, seq: u64, body: &[u8]) -> Verdict {
        #[derive(Deserialize)]
        struct Response<'a> {
            out: String,
            #[serde(borrow)]
            result: &'a RawValue,
            #[serde(default, borrow)]
            id: Option<&'a RawValue>,
        }
        #[derive(Deserialize)]
        struct ErrorResult {
            code: String,
        }
        let Ok(r) = serde_json::from_slice::<Response>(body) else {
            return Verdict::Malformed;
        };
        if r.out == "error" {
            let code = serde_json::from_str::<ErrorResult>(r.result.get())
                .map_or_else(|_| "?".to_string(), |e| e.code);
            return Verdict::ErrorResponse(code);
        }
        let want_out = match op {
            Op::Ping => "pong",
            Op::Fib => "fib",
            Op::Get => "get",
            Op::Set => "set",
        };
        if r.out != want_out {
            return Verdict::WrongOut(r.out);
        }
        if r.id.map(RawValue::get).map(str::as_bytes) != Some(&id_digits(seq)[..]) {
            return Verdict::OutOfOrder;
        }
        // Same meaning, other bytes (e.g. whitespace) would still be correct.
        let expected = match op {
            Op::Ping | Op::Fib => &self.expect_fixed,
            Op::Set => &self.expect_set,
            Op::Get if r.result.get() == "null" => return Verdict::Ok { hit: false },
            Op::Get => &self.expect_get_hit,
        };
        let prefix =
            std::str::from_utf8(&expected[..expected.len() - ",\"id\":".len()]).unwrap_or_default();
        let want: Option<serde_json::Value> = prefix
            .split_once("\"result\":")
            .and_then(|(_, v)| serde_json::from_str(v).ok());
        let got: Option<serde_json::Value> = serde_json::from_str(r.result.get()).ok();
        if want.is_some() && want == got {
            Verdict::Ok { hit: op == Op::Get }
        } else {
            Verdict::WrongResult
        }
    }
}

fn id_digits(seq: u64) -> [u8; ID_WIDTH] {
    let mut n = ID_BASE + seq;
    let mut d = [b'0'; ID_WIDTH];
    for slot in d.iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
    }
    d
}

#[inline]
fn write_id(out: &mut Vec<u8>, seq: u64) {
    out.extend_from_slice(&id_digits(seq));
}

/// Appends `n` in decimal without allocating.
#[inline]
fn write_digits(out: &mut Vec<u8>, mut n: u64) {
    let mut d = [0u8; 20];
    let mut i = d.len();
    loop {
        i -= 1;
        d[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&d[i..]);
}

/// xorshift64*: plenty for picking keys, and no dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reactor_rpc::protocol::{decode, Decoded, HEADER_LEN};
    use reactor_rpc::service::Service;

    fn spec(kind: Kind) -> Spec {
        Spec {
            kind,
            ping_method: "ping".into(),
            ping_param: "hello".into(),
            fib_n: 30,
            keys: 10,
            value_size: 8,
            read_ratio: 0.5,
        }
    }

    /// Sends requests through the real service and checks every answer.
    fn round_trip(kind: Kind) -> Vec<Verdict> {
        let w = Workload::new(&spec(kind));
        let service = Service::new();
        let mut rng = Rng::new(1);
        (0..50)
            .map(|seq| {
                let mut req = Vec::new();
                let op = w.write_request(&mut rng, seq, &mut req);
                let mut resp = Vec::new();
                service.handle(&"test", &req[HEADER_LEN..], &mut resp, false);
                let Decoded::Frame { body_len } = decode(&resp, u32::MAX) else {
                    panic!("no frame");
                };
                assert_eq!(resp.len(), HEADER_LEN + body_len);
                w.check(op, seq, &resp[HEADER_LEN..])
            })
            .collect()
    }

    #[test]
    fn real_responses_pass() {
        for kind in [Kind::Ping, Kind::Fib] {
            assert!(round_trip(kind)
                .iter()
                .all(|v| *v == Verdict::Ok { hit: false }));
        }
        let cache = round_trip(Kind::Cache);
        assert!(cache.iter().all(|v| matches!(v, Verdict::Ok { .. })));
        assert!(cache.contains(&Verdict::Ok { hit: true }));
    }

    #[test]
    fn wrong_responses_are_classified() {
        let w = Workload::new(&spec(Kind::Ping));
        let id = |s| String::from_utf8(id_digits(s).to_vec()).unwrap();
        let check = |body: String| w.check(Op::Ping, 7, body.as_bytes());
        assert_eq!(
            check(format!(
                r#"{{"out":"pong","result":"hello","id":{}}}"#,
                id(7)
            )),
            Verdict::Ok { hit: false }
        );
        assert_eq!(
            check(format!(
                r#"{{"out": "pong", "result": "hello", "id": {}}}"#,
                id(7)
            )),
            Verdict::Ok { hit: false }
        );
        assert_eq!(
            check(format!(
                r#"{{"out":"pong","result":"hello","id":{}}}"#,
                id(8)
            )),
            Verdict::OutOfOrder
        );
        assert_eq!(
            check(format!(
                r#"{{"out":"pang","result":"hello","id":{}}}"#,
                id(7)
            )),
            Verdict::WrongOut("pang".into())
        );
        assert_eq!(
            check(format!(r#"{{"out":"pong","result":"bye","id":{}}}"#, id(7))),
            Verdict::WrongResult
        );
        assert_eq!(
            check(r#"{"out":"error","result":{"code":"unknown_method","message":"x"}}"#.into()),
            Verdict::ErrorResponse("unknown_method".into())
        );
        assert_eq!(check("nope".into()), Verdict::Malformed);
    }
}
