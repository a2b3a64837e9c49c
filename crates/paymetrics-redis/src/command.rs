//! What a command is, read from its arguments: the closed [`Operation`] set, where its key is,
//! whether it is a read (and how its reply tells a hit from a miss), and the TTL it sets.
//!
//! Everything here works on the borrowed arguments of a `redis::Cmd` and its reply; nothing
//! allocates. Recording lives in `instruments.rs`.

use std::time::{SystemTime, UNIX_EPOCH};

use redis::{Arg, Cmd, Value};

/// Where a command's (first) key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyAt {
    /// The command takes no key (or its first argument is not one, as `PUBLISH`'s channel).
    None,
    /// The argument right after the command name.
    First,
    /// `EVAL script numkeys key...`: the first key, if `numkeys > 0`.
    Eval,
}

/// How a read's reply tells hits from misses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Read {
    /// Not a read: no hit/miss is recorded.
    No,
    /// One value: nil is a miss (`GET`, `HGET`, `GETEX`, `GETDEL`).
    Value,
    /// An array with one value per key, nil a miss, each key with its own pattern (`MGET`).
    PerKey,
    /// An array with one value per field of one key, nil a miss (`HMGET`).
    PerField,
    /// A map or array: empty is a miss (`HGETALL`).
    NonEmpty,
    /// An integer counting the keys that exist: the rest are misses (`EXISTS`).
    Count,
    /// 1 (or true) for a hit, 0 for a miss (`HEXISTS`).
    Flag,
}

/// Which TTL a command sets, and in which unit it is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ttl {
    /// None.
    No,
    /// `SET key value [NX|XX] [GET] [EX s|PX ms|EXAT ts|PXAT ms-ts|KEEPTTL]`.
    SetOptions,
    /// `GETEX key [EX s|PX ms|EXAT ts|PXAT ms-ts|PERSIST]`.
    GetExOptions,
    /// Seconds in the argument after the key (`SETEX`, `EXPIRE`).
    Seconds,
    /// Milliseconds in the argument after the key (`PSETEX`, `PEXPIRE`).
    Millis,
    /// A Unix time in seconds in the argument after the key (`EXPIREAT`).
    AtSeconds,
    /// A Unix time in milliseconds in the argument after the key (`PEXPIREAT`).
    AtMillis,
}

macro_rules! operations {
    ($( $variant:ident = $upper:literal, $tag:literal, $key:ident, $read:ident, $ttl:ident; )*) => {
        /// The closed set of operations the `operation` tag takes: the command name, lowercase.
        ///
        /// Commands outside the set are recorded as [`Operation::Other`]; a pipeline's or a
        /// transaction's round trip (one `cache.operations.response_time` sample) as
        /// [`Operation::Pipeline`] or [`Operation::Transaction`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Operation {
            $(
                #[doc = concat!("`", $tag, "`")]
                $variant,
            )*
            /// `pipeline`: the round trip of a non-atomic pipeline (its commands are recorded
            /// one by one under their own operations).
            Pipeline,
            /// `transaction`: the round trip of an atomic pipeline (`MULTI` ... `EXEC`).
            Transaction,
            /// `other`: any command outside the set.
            Other,
        }

        impl Operation {
            /// Every operation, in declaration order.
            pub const ALL: &'static [Operation] = &[$(Operation::$variant,)* Operation::Pipeline, Operation::Transaction, Operation::Other];

            /// The `operation` tag value.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Operation::$variant => $tag,)*
                    Operation::Pipeline => "pipeline",
                    Operation::Transaction => "transaction",
                    Operation::Other => "other",
                }
            }

            /// The position of this operation in [`Operation::ALL`]: a dense table index.
            pub(crate) const fn index(self) -> usize {
                self as usize
            }

            fn from_upper(name: &[u8]) -> Operation {
                match name {
                    $($upper => Operation::$variant,)*
                    _ => Operation::Other,
                }
            }

            pub(crate) const fn key_at(self) -> KeyAt {
                match self {
                    $(Operation::$variant => KeyAt::$key,)*
                    Operation::Pipeline | Operation::Transaction | Operation::Other => KeyAt::None,
                }
            }

            pub(crate) const fn read(self) -> Read {
                match self {
                    $(Operation::$variant => Read::$read,)*
                    Operation::Pipeline | Operation::Transaction | Operation::Other => Read::No,
                }
            }

            pub(crate) const fn ttl(self) -> Ttl {
                match self {
                    $(Operation::$variant => Ttl::$ttl,)*
                    Operation::Pipeline | Operation::Transaction | Operation::Other => Ttl::No,
                }
            }
        }
    };
}

operations! {
    // strings
    Get = b"GET", "get", First, Value, No;
    Set = b"SET", "set", First, No, SetOptions;
    SetEx = b"SETEX", "setex", First, No, Seconds;
    PSetEx = b"PSETEX", "psetex", First, No, Millis;
    SetNx = b"SETNX", "setnx", First, No, No;
    GetEx = b"GETEX", "getex", First, Value, GetExOptions;
    GetDel = b"GETDEL", "getdel", First, Value, No;
    GetSet = b"GETSET", "getset", First, No, No;
    MGet = b"MGET", "mget", First, PerKey, No;
    MSet = b"MSET", "mset", First, No, No;
    MSetNx = b"MSETNX", "msetnx", First, No, No;
    Append = b"APPEND", "append", First, No, No;
    StrLen = b"STRLEN", "strlen", First, No, No;
    Incr = b"INCR", "incr", First, No, No;
    IncrBy = b"INCRBY", "incrby", First, No, No;
    IncrByFloat = b"INCRBYFLOAT", "incrbyfloat", First, No, No;
    Decr = b"DECR", "decr", First, No, No;
    DecrBy = b"DECRBY", "decrby", First, No, No;
    // keys
    Del = b"DEL", "del", First, No, No;
    Unlink = b"UNLINK", "unlink", First, No, No;
    Exists = b"EXISTS", "exists", First, Count, No;
    Expire = b"EXPIRE", "expire", First, No, Seconds;
    PExpire = b"PEXPIRE", "pexpire", First, No, Millis;
    ExpireAt = b"EXPIREAT", "expireat", First, No, AtSeconds;
    PExpireAt = b"PEXPIREAT", "pexpireat", First, No, AtMillis;
    Persist = b"PERSIST", "persist", First, No, No;
    TtlCmd = b"TTL", "ttl", First, No, No;
    PTtl = b"PTTL", "pttl", First, No, No;
    Type = b"TYPE", "type", First, No, No;
    Rename = b"RENAME", "rename", First, No, No;
    Scan = b"SCAN", "scan", None, No, No;
    Keys = b"KEYS", "keys", None, No, No;
    // hashes
    HGet = b"HGET", "hget", First, Value, No;
    HSet = b"HSET", "hset", First, No, No;
    HSetNx = b"HSETNX", "hsetnx", First, No, No;
    HMGet = b"HMGET", "hmget", First, PerField, No;
    HMSet = b"HMSET", "hmset", First, No, No;
    HGetAll = b"HGETALL", "hgetall", First, NonEmpty, No;
    HDel = b"HDEL", "hdel", First, No, No;
    HExists = b"HEXISTS", "hexists", First, Flag, No;
    HIncrBy = b"HINCRBY", "hincrby", First, No, No;
    HLen = b"HLEN", "hlen", First, No, No;
    HKeys = b"HKEYS", "hkeys", First, No, No;
    HVals = b"HVALS", "hvals", First, No, No;
    // lists
    LPush = b"LPUSH", "lpush", First, No, No;
    RPush = b"RPUSH", "rpush", First, No, No;
    LPop = b"LPOP", "lpop", First, No, No;
    RPop = b"RPOP", "rpop", First, No, No;
    BLPop = b"BLPOP", "blpop", First, No, No;
    BRPop = b"BRPOP", "brpop", First, No, No;
    LRange = b"LRANGE", "lrange", First, No, No;
    LLen = b"LLEN", "llen", First, No, No;
    LTrim = b"LTRIM", "ltrim", First, No, No;
    // sets
    SAdd = b"SADD", "sadd", First, No, No;
    SRem = b"SREM", "srem", First, No, No;
    SMembers = b"SMEMBERS", "smembers", First, No, No;
    SIsMember = b"SISMEMBER", "sismember", First, No, No;
    SCard = b"SCARD", "scard", First, No, No;
    // sorted sets
    ZAdd = b"ZADD", "zadd", First, No, No;
    ZRem = b"ZREM", "zrem", First, No, No;
    ZIncrBy = b"ZINCRBY", "zincrby", First, No, No;
    ZScore = b"ZSCORE", "zscore", First, No, No;
    ZRange = b"ZRANGE", "zrange", First, No, No;
    ZRangeByScore = b"ZRANGEBYSCORE", "zrangebyscore", First, No, No;
    ZRemRangeByScore = b"ZREMRANGEBYSCORE", "zremrangebyscore", First, No, No;
    ZCard = b"ZCARD", "zcard", First, No, No;
    // scripting, pub/sub
    Eval = b"EVAL", "eval", Eval, No, No;
    EvalSha = b"EVALSHA", "evalsha", Eval, No, No;
    Publish = b"PUBLISH", "publish", None, No, No;
    // transactions sent by hand
    Multi = b"MULTI", "multi", None, No, No;
    Exec = b"EXEC", "exec", None, No, No;
    Discard = b"DISCARD", "discard", None, No, No;
    Watch = b"WATCH", "watch", First, No, No;
    Unwatch = b"UNWATCH", "unwatch", None, No, No;
    // server
    Ping = b"PING", "ping", None, No, No;
    DbSize = b"DBSIZE", "dbsize", None, No, No;
}

/// Longest command name in the set; longer names are [`Operation::Other`] without a look.
const LONGEST_NAME: usize = 16;

impl Operation {
    /// The operation of a command name, in any case (`get`, `GET`, `Get`).
    pub fn from_name(name: &[u8]) -> Operation {
        if name.is_empty() || name.len() > LONGEST_NAME {
            return Operation::Other;
        }
        let mut upper = [0u8; LONGEST_NAME];
        for (to, from) in upper.iter_mut().zip(name) {
            *to = from.to_ascii_uppercase();
        }
        Operation::from_upper(&upper[..name.len()])
    }
}

/// One command as metrics see it: its operation and its key, borrowed from the `Cmd`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Parsed<'a> {
    pub(crate) op: Operation,
    pub(crate) key: Option<&'a [u8]>,
}

fn simple(arg: Arg<&[u8]>) -> Option<&[u8]> {
    match arg {
        Arg::Simple(bytes) => Some(bytes),
        _ => None,
    }
}

impl<'a> Parsed<'a> {
    pub(crate) fn new(cmd: &'a Cmd) -> Self {
        let mut args = cmd.args_iter();
        let op = args
            .next()
            .and_then(simple)
            .map_or(Operation::Other, Operation::from_name);
        let key = match op.key_at() {
            KeyAt::None => None,
            KeyAt::First => args.next().and_then(simple),
            KeyAt::Eval => {
                let numkeys = args.nth(1).and_then(simple).and_then(parse_int);
                match numkeys {
                    Some(n) if n > 0 => args.next().and_then(simple),
                    _ => None,
                }
            }
        };
        Parsed { op, key }
    }
}

/// The keys of a multi-key read (`MGET k1 k2 ...`), in order.
pub(crate) fn keys(cmd: &Cmd) -> impl Iterator<Item = &[u8]> {
    cmd.args_iter().skip(1).filter_map(simple)
}

/// An ASCII decimal integer, optionally negative; `None` if anything else or out of range.
pub(crate) fn parse_int(bytes: &[u8]) -> Option<i64> {
    let (negative, digits) = match bytes.split_first()? {
        (b'-', rest) => (true, rest),
        (b'+', rest) => (false, rest),
        _ => (false, bytes),
    };
    if digits.is_empty() {
        return None;
    }
    let mut value: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(i64::from(d - b'0'))?;
    }
    Some(if negative { -value } else { value })
}

/// Hits and misses of one read, with the pattern of each part when it has its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Tally {
    pub(crate) hits: u64,
    pub(crate) misses: u64,
}

/// The hits and misses a reply shows for a read whose keys share one pattern (every read but
/// `MGET`, which the caller walks key by key with [`is_hit`]).
pub(crate) fn hit_miss(read: Read, cmd: &Cmd, reply: &Value) -> Tally {
    let one = |hit: bool| Tally {
        hits: u64::from(hit),
        misses: u64::from(!hit),
    };
    match read {
        Read::No | Read::PerKey => Tally::default(),
        Read::Value => one(is_hit(reply)),
        Read::NonEmpty => one(match reply {
            Value::Array(items) | Value::Set(items) => !items.is_empty(),
            Value::Map(entries) => !entries.is_empty(),
            Value::Nil => false,
            _ => true,
        }),
        Read::Flag => one(match reply {
            Value::Int(n) => *n != 0,
            Value::Boolean(b) => *b,
            _ => false,
        }),
        Read::PerField => match reply {
            Value::Array(items) => {
                let hits = items.iter().filter(|v| is_hit(v)).count() as u64;
                Tally {
                    hits,
                    misses: items.len() as u64 - hits,
                }
            }
            _ => Tally::default(),
        },
        Read::Count => {
            let asked = cmd.args_iter().len().saturating_sub(1) as u64;
            let found = match reply {
                Value::Int(n) => (*n).clamp(0, asked as i64) as u64,
                _ => return Tally::default(),
            };
            Tally {
                hits: found,
                misses: asked - found,
            }
        }
    }
}

/// Whether one value of a reply is a hit: anything but nil (and a per-key error).
pub(crate) fn is_hit(value: &Value) -> bool {
    !matches!(value, Value::Nil | Value::ServerError(_))
}

/// The TTL, in seconds, that `cmd` set given its successful `reply`; `None` when it set none
/// (no TTL option, a condition that failed, a missing key) or a non-positive one (which deletes
/// the key rather than expiring it).
pub(crate) fn ttl_seconds(ttl: Ttl, cmd: &Cmd, reply: &Value) -> Option<f64> {
    let seconds = match ttl {
        Ttl::No => return None,
        Ttl::SetOptions => set_ttl(cmd, reply)?,
        Ttl::GetExOptions => {
            if matches!(reply, Value::Nil) {
                return None; // no such key: nothing expires
            }
            options_ttl(cmd.args_iter().skip(2).filter_map(simple)).ttl?
        }
        Ttl::Seconds | Ttl::Millis | Ttl::AtSeconds | Ttl::AtMillis => {
            if !applied(reply) {
                return None;
            }
            let value = cmd
                .args_iter()
                .nth(2)
                .and_then(simple)
                .and_then(parse_int)?;
            match ttl {
                Ttl::Seconds => value as f64,
                Ttl::Millis => value as f64 / 1000.0,
                Ttl::AtSeconds => from_unix_ms(value.saturating_mul(1000)),
                _ => from_unix_ms(value),
            }
        }
    };
    (seconds > 0.0).then_some(seconds)
}

/// `OK`, or 1 for the `EXPIRE` family (0 means: no such key, or a condition not met).
fn applied(reply: &Value) -> bool {
    match reply {
        Value::Int(n) => *n == 1,
        Value::Boolean(b) => *b,
        Value::Nil => false,
        _ => true,
    }
}

/// Seconds from now to a Unix time in milliseconds.
fn from_unix_ms(at_ms: i64) -> f64 {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    (at_ms - now_ms) as f64 / 1000.0
}

/// What the options of `SET` or `GETEX` say.
#[derive(Debug, Default)]
struct Options {
    ttl: Option<f64>,
    nx: bool,
    xx_or_compare: bool,
    get: bool,
}

fn options_ttl<'a>(mut args: impl Iterator<Item = &'a [u8]>) -> Options {
    let mut options = Options::default();
    while let Some(arg) = args.next() {
        let is = |name: &[u8]| arg.eq_ignore_ascii_case(name);
        if is(b"EX") {
            options.ttl = args.next().and_then(parse_int).map(|s| s as f64);
        } else if is(b"PX") {
            options.ttl = args.next().and_then(parse_int).map(|ms| ms as f64 / 1000.0);
        } else if is(b"EXAT") {
            options.ttl = args
                .next()
                .and_then(parse_int)
                .map(|s| from_unix_ms(s.saturating_mul(1000)));
        } else if is(b"PXAT") {
            options.ttl = args.next().and_then(parse_int).map(from_unix_ms);
        } else if is(b"NX") {
            options.nx = true;
        } else if is(b"XX") {
            options.xx_or_compare = true;
        } else if is(b"GET") {
            options.get = true;
        } else if is(b"IFEQ") || is(b"IFNE") || is(b"IFDEQ") || is(b"IFDNE") {
            options.xx_or_compare = true;
            args.next(); // the compared value
        }
    }
    options
}

/// The TTL of a `SET` that took effect. Without `GET` the reply says it: `OK` or nil. With
/// `GET` the reply is the old value: nil means the key was absent, so `NX` set it and `XX` (or
/// a comparison) did not.
fn set_ttl(cmd: &Cmd, reply: &Value) -> Option<f64> {
    let options = options_ttl(cmd.args_iter().skip(3).filter_map(simple));
    let ttl = options.ttl?;
    let nil = matches!(reply, Value::Nil);
    let set = if !options.get {
        !nil
    } else if options.nx {
        nil
    } else if options.xx_or_compare {
        !nil
    } else {
        true
    };
    set.then_some(ttl)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(args: &[&str]) -> Cmd {
        let mut c = redis::cmd(args[0]);
        for a in &args[1..] {
            c.arg(*a);
        }
        c
    }

    #[test]
    fn names_parse_in_any_case_into_the_closed_set() {
        assert_eq!(Operation::from_name(b"GET"), Operation::Get);
        assert_eq!(Operation::from_name(b"get"), Operation::Get);
        assert_eq!(Operation::from_name(b"mGeT"), Operation::MGet);
        assert_eq!(
            Operation::from_name(b"ZREMRANGEBYSCORE"),
            Operation::ZRemRangeByScore
        );
        assert_eq!(Operation::from_name(b"CLIENT"), Operation::Other);
        assert_eq!(Operation::from_name(b""), Operation::Other);
        assert_eq!(
            Operation::from_name(b"AVERYLONGCOMMANDNAMEINDEED"),
            Operation::Other
        );
        assert_eq!(Operation::from_name(b"PIPELINE"), Operation::Other);
    }

    #[test]
    fn tags_are_the_lowercase_names_and_indexes_are_dense() {
        for (i, op) in Operation::ALL.iter().enumerate() {
            assert_eq!(op.index(), i);
            let tag = op.as_str();
            assert_eq!(tag, tag.to_ascii_lowercase());
            if !matches!(
                op,
                Operation::Pipeline | Operation::Transaction | Operation::Other
            ) {
                assert_eq!(Operation::from_name(tag.as_bytes()), *op, "{tag}");
            }
        }
    }

    #[test]
    fn keys_are_found_where_each_command_keeps_them() {
        let c = cmd(&["GET", "user:1"]);
        let p = Parsed::new(&c);
        assert_eq!((p.op, p.key), (Operation::Get, Some(&b"user:1"[..])));
        let c = cmd(&["PING"]);
        assert_eq!(Parsed::new(&c).key, None);
        let c = cmd(&["EVAL", "return 1", "1", "session:9", "x"]);
        assert_eq!(Parsed::new(&c).key, Some(&b"session:9"[..]));
        let c = cmd(&["EVAL", "return 1", "0", "x"]);
        assert_eq!(Parsed::new(&c).key, None);
        let c = cmd(&["PUBLISH", "user:1", "x"]);
        assert_eq!(Parsed::new(&c).key, None);
    }

    #[test]
    fn integers_parse_strictly() {
        assert_eq!(parse_int(b"60"), Some(60));
        assert_eq!(parse_int(b"-5"), Some(-5));
        assert_eq!(parse_int(b"+5"), Some(5));
        assert_eq!(parse_int(b""), None);
        assert_eq!(parse_int(b"-"), None);
        assert_eq!(parse_int(b"1.5"), None);
        assert_eq!(parse_int(b"99999999999999999999"), None);
    }

    #[test]
    fn ttls_are_read_in_seconds_from_every_form() {
        let ok = Value::Okay;
        let t = |args: &[&str], reply: &Value| {
            let c = cmd(args);
            ttl_seconds(Parsed::new(&c).op.ttl(), &c, reply)
        };
        assert_eq!(t(&["SET", "k", "v", "EX", "60"], &ok), Some(60.0));
        assert_eq!(t(&["set", "k", "v", "px", "1500"], &ok), Some(1.5));
        assert_eq!(t(&["SET", "k", "v", "NX", "EX", "60"], &Value::Nil), None);
        assert_eq!(t(&["SET", "k", "v"], &ok), None);
        assert_eq!(t(&["SET", "k", "v", "KEEPTTL"], &ok), None);
        // GET returns the old value: with NX, nil means the key was absent and was set.
        assert_eq!(
            t(&["SET", "k", "v", "NX", "GET", "EX", "9"], &Value::Nil),
            Some(9.0)
        );
        let old = Value::BulkString(b"old".to_vec());
        assert_eq!(t(&["SET", "k", "v", "NX", "GET", "EX", "9"], &old), None);
        assert_eq!(
            t(&["SET", "k", "v", "GET", "EX", "9"], &Value::Nil),
            Some(9.0)
        );
        assert_eq!(
            t(&["SET", "k", "v", "XX", "GET", "EX", "9"], &Value::Nil),
            None
        );
        // a value that looks like an option is not one
        assert_eq!(t(&["SET", "k", "EX", "PX", "2000"], &ok), Some(2.0));
        assert_eq!(t(&["SETEX", "k", "30", "v"], &ok), Some(30.0));
        assert_eq!(t(&["PSETEX", "k", "2500", "v"], &ok), Some(2.5));
        assert_eq!(t(&["EXPIRE", "k", "120"], &Value::Int(1)), Some(120.0));
        assert_eq!(t(&["EXPIRE", "k", "120"], &Value::Int(0)), None);
        assert_eq!(t(&["EXPIRE", "k", "-1"], &Value::Int(1)), None);
        assert_eq!(t(&["PEXPIRE", "k", "250"], &Value::Int(1)), Some(0.25));
        assert_eq!(t(&["GETEX", "k", "EX", "7"], &old), Some(7.0));
        assert_eq!(t(&["GETEX", "k", "EX", "7"], &Value::Nil), None);
        assert_eq!(t(&["GETEX", "k", "PERSIST"], &old), None);

        let now_s = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let at = t(
            &["EXPIREAT", "k", &(now_s + 100).to_string()],
            &Value::Int(1),
        )
        .unwrap();
        assert!((98.0..=100.0).contains(&at), "{at}");
        let at = t(
            &["PEXPIREAT", "k", &((now_s + 100) * 1000).to_string()],
            &Value::Int(1),
        )
        .unwrap();
        assert!((98.0..=100.0).contains(&at), "{at}");
        let at = t(&["SET", "k", "v", "EXAT", &(now_s + 50).to_string()], &ok).unwrap();
        assert!((48.0..=50.0).contains(&at), "{at}");
        assert_eq!(t(&["EXPIREAT", "k", "1"], &Value::Int(1)), None);
    }

    #[test]
    fn replies_tell_hits_from_misses() {
        let hm = |args: &[&str], reply: Value| {
            let c = cmd(args);
            let h = hit_miss(Parsed::new(&c).op.read(), &c, &reply);
            (h.hits, h.misses)
        };
        let v = || Value::BulkString(b"x".to_vec());
        assert_eq!(hm(&["GET", "k"], v()), (1, 0));
        assert_eq!(hm(&["GET", "k"], Value::Nil), (0, 1));
        assert_eq!(hm(&["HGET", "k", "f"], Value::Nil), (0, 1));
        assert_eq!(hm(&["EXISTS", "a", "b", "c"], Value::Int(2)), (2, 1));
        assert_eq!(hm(&["EXISTS", "a"], Value::Int(0)), (0, 1));
        assert_eq!(hm(&["HEXISTS", "k", "f"], Value::Int(1)), (1, 0));
        assert_eq!(hm(&["HEXISTS", "k", "f"], Value::Boolean(false)), (0, 1));
        assert_eq!(hm(&["HGETALL", "k"], Value::Map(vec![])), (0, 1));
        assert_eq!(hm(&["HGETALL", "k"], Value::Array(vec![v(), v()])), (1, 0));
        assert_eq!(
            hm(
                &["HMGET", "k", "a", "b", "c"],
                Value::Array(vec![v(), Value::Nil, v()])
            ),
            (2, 1)
        );
        assert_eq!(hm(&["SET", "k", "v"], Value::Okay), (0, 0));
    }
}
