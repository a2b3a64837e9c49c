//! The closed set of `error_type` tag values, and how a `redis` error or error reply maps onto
//! it. Never an error's message: messages carry keys and values.

use redis::{ErrorKind, RedisError, ServerError};

macro_rules! error_types {
    ($( $(#[$doc:meta])* $variant:ident = $tag:literal; )*) => {
        /// The `error_type` tag of `cache.operations.errors`: a closed set, whatever the server
        /// or the client library says.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorType {
            $( $(#[$doc])* $variant, )*
        }

        impl ErrorType {
            /// Every error type, in declaration order.
            pub const ALL: &'static [ErrorType] = &[$(ErrorType::$variant,)*];

            /// The `error_type` tag value.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorType::$variant => $tag,)*
                }
            }
        }
    };
}

error_types! {
    /// `connection`: the connection was refused, dropped or could not be made.
    Connection = "connection";
    /// `timeout`: no reply within the connection's response timeout.
    Timeout = "timeout";
    /// `cancelled`: the caller dropped the command's future before the reply (for example an
    /// outer `tokio::time::timeout`).
    Cancelled = "cancelled";
    /// `auth`: `NOAUTH`, `WRONGPASS`, `NOPERM` or a failed authentication.
    Auth = "auth";
    /// `wrong_type`: `WRONGTYPE`, an operation against a key holding another kind of value.
    WrongType = "wrong_type";
    /// `response`: a generic `ERR` reply (bad arguments, a value that is not an integer, ...).
    Response = "response";
    /// `script`: `NOSCRIPT`, or `BUSY` with a script running.
    Script = "script";
    /// `readonly`: `READONLY`, a write sent to a replica.
    ReadOnly = "readonly";
    /// `loading`: `LOADING`, the server is loading its dataset.
    Loading = "loading";
    /// `oom`: `OOM`, the server is over `maxmemory` and cannot evict.
    OutOfMemory = "oom";
    /// `cluster`: `MOVED`, `ASK`, `TRYAGAIN`, `CLUSTERDOWN`, `CROSSSLOT` or `MASTERDOWN`.
    Cluster = "cluster";
    /// `aborted`: a transaction that did not run: `EXECABORT`, or `EXEC` answering nil after a
    /// `WATCH`ed key changed.
    Aborted = "aborted";
    /// `protocol`: a reply that could not be parsed, or an unexpected reply type.
    Protocol = "protocol";
    /// `client`: refused by the client library before it reached the server.
    Client = "client";
    /// `server`: any other error reply from the server.
    Server = "server";
    /// `other`: anything else.
    Other = "other";
}

impl ErrorType {
    /// The error type of an error the connection returned.
    pub fn of_error(error: &RedisError) -> ErrorType {
        if error.is_timeout() {
            return ErrorType::Timeout;
        }
        match error.kind() {
            ErrorKind::Server(_) | ErrorKind::Extension => {
                error.code().map_or(ErrorType::Server, ErrorType::of_code)
            }
            ErrorKind::Io | ErrorKind::ClusterConnectionNotFound => ErrorType::Connection,
            ErrorKind::AuthenticationFailed => ErrorType::Auth,
            ErrorKind::Parse | ErrorKind::UnexpectedReturnType | ErrorKind::RESP3NotSupported => {
                ErrorType::Protocol
            }
            ErrorKind::Client | ErrorKind::InvalidClientConfig => ErrorType::Client,
            _ => ErrorType::Other,
        }
    }

    /// The error type of an error reply (a `redis::Value::ServerError`).
    pub fn of_reply(error: &ServerError) -> ErrorType {
        ErrorType::of_code(error.code())
    }

    /// The error type of an error reply's code, the first word of the reply (`WRONGTYPE`).
    pub fn of_code(code: &str) -> ErrorType {
        match code {
            "ERR" => ErrorType::Response,
            "WRONGTYPE" => ErrorType::WrongType,
            "NOSCRIPT" | "BUSY" => ErrorType::Script,
            "READONLY" => ErrorType::ReadOnly,
            "LOADING" => ErrorType::Loading,
            "OOM" => ErrorType::OutOfMemory,
            "NOAUTH" | "WRONGPASS" | "NOPERM" => ErrorType::Auth,
            "MOVED" | "ASK" | "TRYAGAIN" | "CLUSTERDOWN" | "CROSSSLOT" | "MASTERDOWN" => {
                ErrorType::Cluster
            }
            "EXECABORT" => ErrorType::Aborted,
            _ => ErrorType::Server,
        }
    }

    /// The position of this error type in [`ErrorType::ALL`]: a dense table index.
    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

/// How many error types there are: the size of a table indexed by them.
pub(crate) const ERROR_TYPES: usize = ErrorType::ALL.len();

#[cfg(test)]
mod tests {
    use super::*;
    use redis::Value;

    fn reply(wire: &str) -> ServerError {
        match redis::parse_redis_value(wire.as_bytes()).unwrap() {
            Value::ServerError(e) => e,
            other => panic!("not an error reply: {other:?}"),
        }
    }

    #[test]
    fn error_replies_map_onto_the_closed_set() {
        let cases = [
            (
                "-ERR value is not an integer or out of range\r\n",
                ErrorType::Response,
            ),
            (
                "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
                ErrorType::WrongType,
            ),
            ("-NOSCRIPT No matching script\r\n", ErrorType::Script),
            (
                "-READONLY You can't write against a read only replica.\r\n",
                ErrorType::ReadOnly,
            ),
            (
                "-LOADING Redis is loading the dataset in memory\r\n",
                ErrorType::Loading,
            ),
            (
                "-OOM command not allowed when used memory > 'maxmemory'.\r\n",
                ErrorType::OutOfMemory,
            ),
            ("-NOAUTH Authentication required.\r\n", ErrorType::Auth),
            ("-MOVED 3999 127.0.0.1:6381\r\n", ErrorType::Cluster),
            ("-EXECABORT Transaction discarded\r\n", ErrorType::Aborted),
            ("-MISCONF snapshots failing\r\n", ErrorType::Server),
        ];
        for (wire, expected) in cases {
            let error = reply(wire);
            assert_eq!(ErrorType::of_reply(&error), expected, "{wire}");
            assert_eq!(
                ErrorType::of_error(&RedisError::from(error)),
                expected,
                "{wire}"
            );
        }
    }

    #[test]
    fn client_side_errors_map_onto_the_closed_set() {
        let io = |kind| RedisError::from(std::io::Error::new(kind, "x"));
        assert_eq!(
            ErrorType::of_error(&io(std::io::ErrorKind::ConnectionRefused)),
            ErrorType::Connection
        );
        assert_eq!(
            ErrorType::of_error(&io(std::io::ErrorKind::TimedOut)),
            ErrorType::Timeout
        );
        let client = RedisError::from((ErrorKind::Client, "nope"));
        assert_eq!(ErrorType::of_error(&client), ErrorType::Client);
        let parse = RedisError::from((ErrorKind::UnexpectedReturnType, "nope"));
        assert_eq!(ErrorType::of_error(&parse), ErrorType::Protocol);
    }

    #[test]
    fn tags_are_distinct_and_indexes_dense() {
        for (i, t) in ErrorType::ALL.iter().enumerate() {
            assert_eq!(t.index(), i);
            assert_eq!(
                ErrorType::ALL
                    .iter()
                    .filter(|u| u.as_str() == t.as_str())
                    .count(),
                1
            );
        }
    }
}
