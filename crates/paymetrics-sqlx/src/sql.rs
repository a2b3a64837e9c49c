//! Reading a statement's operation and table from its SQL text: one forward pass over at most
//! [`MAX_SCAN_BYTES`], no allocation. Not a SQL parser: it knows comments, quotes, parentheses and
//! a handful of keywords, which is enough for the statements services send, and it answers
//! "unknown" (no table) rather than guessing when a statement is not simple.

/// How much of a statement is read to find its operation and table. A table named past this point
/// (a very long select list) is reported as unknown.
pub const MAX_SCAN_BYTES: usize = 8 * 1024;

/// Longest table tag value; longer names are cut.
pub const MAX_TABLE_NAME_LEN: usize = 64;

/// What a statement does, from its first keyword: the `operation` tag.
///
/// `WITH` queries take the operation of their main statement; `REPLACE` (SQLite, MySQL) counts as
/// an insert; everything else (DDL, `BEGIN`, `VALUES`, `EXPLAIN`, ...) is [`Operation::Other`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `SELECT`.
    Select,
    /// `INSERT` or `REPLACE`.
    Insert,
    /// `UPDATE`.
    Update,
    /// `DELETE`.
    Delete,
    /// Anything else.
    Other,
}

impl Operation {
    /// Every operation, in tag order.
    pub const ALL: [Operation; 5] = [
        Operation::Select,
        Operation::Insert,
        Operation::Update,
        Operation::Delete,
        Operation::Other,
    ];

    /// The tag value: `select`, `insert`, `update`, `delete` or `other`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Operation::Select => "select",
            Operation::Insert => "insert",
            Operation::Update => "update",
            Operation::Delete => "delete",
            Operation::Other => "other",
        }
    }

    /// The operation of `sql`.
    ///
    /// ```
    /// use paymetrics_sqlx::Operation;
    ///
    /// assert_eq!(Operation::of("select 1"), Operation::Select);
    /// assert_eq!(Operation::of("/* audit */ INSERT INTO ledger VALUES ($1)"), Operation::Insert);
    /// assert_eq!(Operation::of("WITH due AS (SELECT id FROM t) DELETE FROM t"), Operation::Delete);
    /// assert_eq!(Operation::of("CREATE TABLE t (id INT)"), Operation::Other);
    /// ```
    pub fn of(sql: &str) -> Self {
        parse(sql, false).0
    }

    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

/// A sanitised table name: lower-case ASCII letters, digits, `_` and `.` (between schema and
/// table), at most [`MAX_TABLE_NAME_LEN`] bytes, never empty. Lives on the stack so that looking a
/// table up on the hot path allocates nothing.
#[derive(Clone, Copy)]
pub(crate) struct TableName {
    buf: [u8; MAX_TABLE_NAME_LEN],
    len: usize,
}

impl TableName {
    fn new() -> Self {
        Self {
            buf: [0; MAX_TABLE_NAME_LEN],
            len: 0,
        }
    }

    /// Sanitises a name given by the caller; `None` if nothing of it is left.
    pub(crate) fn sanitize(name: &str) -> Option<Self> {
        let mut table = Self::new();
        for part in name.trim().split('.') {
            table.push_part(part);
        }
        table.finish()
    }

    fn push_part(&mut self, part: &str) {
        if self.len > 0 {
            self.push(b'.');
        }
        for c in part.chars() {
            let b = if c.is_ascii_alphanumeric() || c == '_' {
                c.to_ascii_lowercase() as u8
            } else {
                b'_'
            };
            self.push(b);
        }
    }

    fn push(&mut self, b: u8) {
        if self.len < MAX_TABLE_NAME_LEN {
            self.buf[self.len] = b;
            self.len += 1;
        }
    }

    fn finish(mut self) -> Option<Self> {
        // No dangling separator (a cut name, or `schema.`).
        while self.len > 0 && self.buf[self.len - 1] == b'.' {
            self.len -= 1;
        }
        (self.len > 0
            && self.buf[..self.len]
                .iter()
                .any(|b| *b != b'.' && *b != b'_'))
        .then_some(self)
    }

    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII is ever pushed.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("unknown")
    }
}

impl std::fmt::Debug for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("TableName").field(&self.as_str()).finish()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token<'a> {
    /// A bare word: keyword or unquoted identifier.
    Word(&'a str),
    /// A quoted identifier (`"x"`, `` `x` ``, `[x]`), without its quotes.
    Quoted(&'a str),
    Open,
    Close,
    Dot,
    /// `;`: the end of the first statement.
    End,
    /// Literals, operators, parameters.
    Other,
}

struct Lexer<'a> {
    sql: &'a str,
    pos: usize,
    depth: u32,
}

impl<'a> Lexer<'a> {
    fn new(sql: &'a str) -> Self {
        let mut limit = sql.len().min(MAX_SCAN_BYTES);
        while !sql.is_char_boundary(limit) {
            limit -= 1;
        }
        Self {
            sql: &sql[..limit],
            pos: 0,
            depth: 0,
        }
    }

    fn peek_byte(&self, at: usize) -> Option<u8> {
        self.sql.as_bytes().get(at).copied()
    }

    /// The next token and the parenthesis depth it stands at.
    fn next_token(&mut self) -> Option<(Token<'a>, u32)> {
        let bytes = self.sql.as_bytes();
        loop {
            let b = *bytes.get(self.pos)?;
            let start = self.pos;
            match b {
                b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' => self.pos += 1,
                b'-' if self.peek_byte(start + 1) == Some(b'-') => {
                    self.pos = memchr(b'\n', bytes, start).map_or(bytes.len(), |i| i + 1);
                }
                b'/' if self.peek_byte(start + 1) == Some(b'*') => self.skip_block_comment(),
                b'\'' => {
                    self.skip_quoted(b'\'');
                    return Some((Token::Other, self.depth));
                }
                b'"' | b'`' => {
                    let inner = self.skip_quoted(b);
                    return Some((Token::Quoted(inner), self.depth));
                }
                b'[' => {
                    let inner = self.skip_quoted(b']');
                    return Some((Token::Quoted(inner), self.depth));
                }
                b'$' => {
                    self.skip_dollar();
                    return Some((Token::Other, self.depth));
                }
                b'(' => {
                    self.pos += 1;
                    self.depth += 1;
                    return Some((Token::Open, self.depth - 1));
                }
                b')' => {
                    self.pos += 1;
                    self.depth = self.depth.saturating_sub(1);
                    return Some((Token::Close, self.depth));
                }
                b'.' => {
                    self.pos += 1;
                    return Some((Token::Dot, self.depth));
                }
                b';' => {
                    self.pos += 1;
                    return Some((Token::End, self.depth));
                }
                b'0'..=b'9' => {
                    self.pos += 1;
                    while let Some(c) = self.peek_byte(self.pos) {
                        if c.is_ascii_alphanumeric() || c == b'.' || c == b'_' {
                            self.pos += 1;
                        } else {
                            break;
                        }
                    }
                    return Some((Token::Other, self.depth));
                }
                _ if is_word_byte(b) => {
                    while self.peek_byte(self.pos).is_some_and(is_word_byte) {
                        self.pos += 1;
                    }
                    // Word bytes are ASCII or whole UTF-8 sequences, so both ends are boundaries.
                    return Some((Token::Word(&self.sql[start..self.pos]), self.depth));
                }
                _ => {
                    self.pos += 1;
                    return Some((Token::Other, self.depth));
                }
            }
        }
    }

    fn skip_block_comment(&mut self) {
        // PostgreSQL nests block comments; the others do not, and nesting is harmless there.
        let bytes = self.sql.as_bytes();
        let mut nesting = 0u32;
        let mut i = self.pos;
        while i + 1 < bytes.len() {
            match (bytes[i], bytes[i + 1]) {
                (b'/', b'*') => {
                    nesting += 1;
                    i += 2;
                }
                (b'*', b'/') => {
                    nesting -= 1;
                    i += 2;
                    if nesting == 0 {
                        self.pos = i;
                        return;
                    }
                }
                _ => i += 1,
            }
        }
        self.pos = bytes.len();
    }

    /// Skips a quoted run opened at `self.pos` and closed by `close` (doubled to escape it);
    /// returns what is between the quotes.
    fn skip_quoted(&mut self, close: u8) -> &'a str {
        let bytes = self.sql.as_bytes();
        let start = self.pos + 1;
        let mut i = start;
        loop {
            match memchr(close, bytes, i) {
                Some(j) if bytes.get(j + 1) == Some(&close) && close != b']' => i = j + 2,
                Some(j) => {
                    self.pos = j + 1;
                    return &self.sql[start..j];
                }
                None => {
                    self.pos = bytes.len();
                    return &self.sql[start..];
                }
            }
        }
    }

    /// `$1` (a parameter) or `$tag$ ... $tag$` (a PostgreSQL dollar-quoted string).
    fn skip_dollar(&mut self) {
        let bytes = self.sql.as_bytes();
        let start = self.pos;
        let mut i = start + 1;
        if bytes.get(i).is_some_and(u8::is_ascii_digit) {
            while bytes.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            self.pos = i;
            return;
        }
        while bytes
            .get(i)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
        {
            i += 1;
        }
        if bytes.get(i) != Some(&b'$') {
            self.pos = start + 1;
            return;
        }
        let tag = &bytes[start..=i];
        let mut j = i + 1;
        while let Some(k) = memchr(b'$', bytes, j) {
            if bytes[k..].starts_with(tag) {
                self.pos = k + tag.len();
                return;
            }
            j = k + 1;
        }
        self.pos = bytes.len();
    }
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

fn memchr(needle: u8, haystack: &[u8], from: usize) -> Option<usize> {
    haystack
        .get(from..)?
        .iter()
        .position(|b| *b == needle)
        .map(|i| i + from)
}

fn is(word: &str, keyword: &str) -> bool {
    word.eq_ignore_ascii_case(keyword)
}

/// The operation of `sql` and, if `want_table`, the table a simple statement names.
pub(crate) fn parse(sql: &str, want_table: bool) -> (Operation, Option<TableName>) {
    let mut lexer = Lexer::new(sql);
    let (mut keyword, base) = loop {
        match lexer.next_token() {
            Some((Token::Word(w), depth)) => break (w, depth),
            Some((Token::Open | Token::End, _)) => continue,
            _ => return (Operation::Other, None),
        }
    };
    if is(keyword, "with") {
        // The main statement is the first data keyword outside the CTEs' parentheses.
        keyword = loop {
            match lexer.next_token() {
                Some((Token::Word(w), depth))
                    if depth == base
                        && ["select", "insert", "update", "delete"]
                            .iter()
                            .any(|k| is(w, k)) =>
                {
                    break w;
                }
                Some((Token::End, _)) | None => return (Operation::Other, None),
                Some(_) => continue,
            }
        };
    }
    let operation = if is(keyword, "select") {
        Operation::Select
    } else if is(keyword, "insert") || is(keyword, "replace") {
        Operation::Insert
    } else if is(keyword, "update") {
        Operation::Update
    } else if is(keyword, "delete") {
        Operation::Delete
    } else {
        Operation::Other
    };
    if !want_table {
        return (operation, None);
    }
    let table = match operation {
        Operation::Select => table_after(&mut lexer, base, "from", true),
        Operation::Delete => table_after(&mut lexer, base, "from", true),
        Operation::Insert => table_after(&mut lexer, base, "into", false),
        Operation::Update => table_name(&mut lexer, false),
        Operation::Other => None,
    };
    (operation, table)
}

/// The table named after the first `keyword` at depth `base` (not after `IS DISTINCT FROM`).
fn table_after(lexer: &mut Lexer<'_>, base: u32, keyword: &str, from: bool) -> Option<TableName> {
    let mut previous: Option<&str> = None;
    loop {
        match lexer.next_token()? {
            (Token::End, _) => return None,
            (Token::Word(w), depth) if depth == base => {
                if is(w, keyword) && !previous.is_some_and(|p| is(p, "distinct")) {
                    return table_name(lexer, from);
                }
                previous = Some(w);
            }
            _ => previous = None,
        }
    }
}

/// Reads `[modifiers] name[.name...]`. With `from`, a name followed by `(` is a function call
/// (`FROM generate_series(...)`), so no table.
fn table_name(lexer: &mut Lexer<'_>, from: bool) -> Option<TableName> {
    let mut token = lexer.next_token()?.0;
    // `UPDATE OR REPLACE t`, `DELETE FROM ONLY t`, `INSERT IGNORE INTO t`, `UPDATE LOW_PRIORITY t`.
    while let Token::Word(w) = token {
        if is(w, "or") {
            lexer.next_token()?;
        } else if !(is(w, "only") || is(w, "ignore") || is(w, "low_priority") || is(w, "quick")) {
            break;
        }
        token = lexer.next_token()?.0;
    }
    let mut name = TableName::new();
    match token {
        Token::Word(w) if !is(w, "lateral") && !is(w, "select") => name.push_part(w),
        Token::Quoted(q) => name.push_part(q),
        _ => return None,
    }
    loop {
        match lexer.next_token() {
            Some((Token::Dot, _)) => match lexer.next_token() {
                Some((Token::Word(w) | Token::Quoted(w), _)) => name.push_part(w),
                _ => return None,
            },
            Some((Token::Open, _)) if from => return None,
            _ => break,
        }
    }
    name.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn table(sql: &str) -> (Operation, Option<String>) {
        let (op, table) = parse(sql, true);
        (op, table.map(|t| t.as_str().to_owned()))
    }

    fn t(op: Operation, name: &str) -> (Operation, Option<String>) {
        (op, Some(name.to_owned()))
    }

    #[test]
    fn simple_statements() {
        use Operation::*;
        assert_eq!(
            table("SELECT id FROM payments WHERE id = $1"),
            t(Select, "payments")
        );
        assert_eq!(table("select * from Payments"), t(Select, "payments"));
        assert_eq!(
            table("INSERT INTO ledger (id, amount) VALUES (?, ?)"),
            t(Insert, "ledger")
        );
        assert_eq!(
            table("UPDATE accounts SET balance = 0"),
            t(Update, "accounts")
        );
        assert_eq!(
            table("DELETE FROM sessions WHERE expired"),
            t(Delete, "sessions")
        );
        assert_eq!(table("SELECT 1"), (Select, None));
        assert_eq!(table("CREATE TABLE x (id INT)"), (Other, None));
        assert_eq!(table("BEGIN"), (Other, None));
        assert_eq!(table(""), (Other, None));
        assert_eq!(table("   "), (Other, None));
    }

    #[test]
    fn dialect_modifiers() {
        use Operation::*;
        assert_eq!(
            table("INSERT OR REPLACE INTO kv VALUES (1)"),
            t(Insert, "kv")
        );
        assert_eq!(table("REPLACE INTO kv VALUES (1)"), t(Insert, "kv"));
        assert_eq!(table("INSERT IGNORE INTO kv VALUES (1)"), t(Insert, "kv"));
        assert_eq!(table("UPDATE OR IGNORE kv SET v = 1"), t(Update, "kv"));
        assert_eq!(table("UPDATE ONLY kv SET v = 1"), t(Update, "kv"));
        assert_eq!(table("DELETE FROM ONLY kv"), t(Delete, "kv"));
        assert_eq!(
            table("INSERT INTO t (a) VALUES (1) ON CONFLICT (a) DO UPDATE SET a = 2"),
            t(Insert, "t")
        );
    }

    #[test]
    fn quoting_and_schemas() {
        use Operation::*;
        assert_eq!(
            table(r#"SELECT * FROM "Billing"."Invoices""#),
            t(Select, "billing.invoices")
        );
        assert_eq!(
            table("SELECT * FROM public.payments p"),
            t(Select, "public.payments")
        );
        assert_eq!(table("SELECT * FROM `orders`"), t(Select, "orders"));
        assert_eq!(
            table("SELECT * FROM [order items]"),
            t(Select, "order_items")
        );
        assert_eq!(table(r#"SELECT * FROM "we""ird""#), t(Select, "we__ird"));
        assert_eq!(table("SELECT * FROM \"\""), (Select, None));
    }

    #[test]
    fn skips_comments_strings_and_nested_from() {
        use Operation::*;
        assert_eq!(
            table("-- lookup\n/* a /* nested */ comment */ SELECT 'FROM x' AS s FROM real_table"),
            t(Select, "real_table")
        );
        assert_eq!(
            table("SELECT EXTRACT(YEAR FROM created_at) FROM payments"),
            t(Select, "payments")
        );
        assert_eq!(
            table("SELECT $$ FROM x $$, $tag$ FROM y $tag$ FROM z"),
            t(Select, "z")
        );
        assert_eq!(table("SELECT a IS DISTINCT FROM b FROM t"), t(Select, "t"));
        assert_eq!(table("SELECT $1::int FROM t"), t(Select, "t"));
        assert_eq!(
            table("(SELECT id FROM a) UNION (SELECT id FROM b)"),
            t(Select, "a")
        );
    }

    #[test]
    fn not_simple_means_unknown() {
        use Operation::*;
        assert_eq!(table("SELECT * FROM (SELECT 1) s"), (Select, None));
        assert_eq!(table("SELECT * FROM generate_series(1, 3)"), (Select, None));
        assert_eq!(table("SELECT * FROM LATERAL f()"), (Select, None));
        assert_eq!(table("SELECT 1; SELECT * FROM t"), (Select, None));
        let long = format!("SELECT {} FROM t", "x, ".repeat(MAX_SCAN_BYTES));
        assert_eq!(table(&long), (Select, None));
    }

    #[test]
    fn with_takes_the_main_statement() {
        use Operation::*;
        assert_eq!(
            table("WITH due AS (SELECT id FROM invoices) UPDATE invoices SET paid = true"),
            t(Update, "invoices")
        );
        assert_eq!(
            table("with recursive r(n) as (select 1 union all select n+1 from r) select n from r"),
            t(Select, "r")
        );
        assert_eq!(table("WITH x AS (SELECT 1)"), (Other, None));
    }

    #[test]
    fn long_names_are_cut() {
        let sql = format!("SELECT * FROM {}", "a".repeat(200));
        let (_, name) = table(&sql);
        assert_eq!(name.unwrap(), "a".repeat(MAX_TABLE_NAME_LEN));
        let sql = format!("SELECT * FROM {}.b", "a".repeat(MAX_TABLE_NAME_LEN - 1));
        assert_eq!(table(&sql).1.unwrap(), "a".repeat(MAX_TABLE_NAME_LEN - 1));
    }

    #[test]
    fn sanitize_explicit_names() {
        let s = |n: &str| TableName::sanitize(n).map(|t| t.as_str().to_owned());
        assert_eq!(s("Payments").as_deref(), Some("payments"));
        assert_eq!(s(" billing.invoices ").as_deref(), Some("billing.invoices"));
        assert_eq!(s("naïve table").as_deref(), Some("na_ve_table"));
        assert_eq!(s(""), None);
        assert_eq!(s("..."), None);
        assert_eq!(s("!!"), None);
    }

    proptest! {
        #[test]
        fn never_panics_and_stays_bounded(sql in "\\PC{0,200}") {
            let (_, name) = parse(&sql, true);
            if let Some(name) = name {
                let name = name.as_str();
                prop_assert!(!name.is_empty() && name.len() <= MAX_TABLE_NAME_LEN);
                prop_assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.'));
            }
        }

        #[test]
        fn sql_like_text_never_panics(
            sql in proptest::collection::vec(
                prop_oneof![
                    Just("SELECT "), Just("FROM "), Just("INSERT "), Just("INTO "), Just("WITH "),
                    Just("("), Just(")"), Just("'"), Just("\""), Just("$"), Just("$a$"), Just("/*"),
                    Just("*/"), Just("--"), Just("\n"), Just("."), Just(";"), Just("t "), Just("é"),
                    Just("["), Just("]"), Just("`"), Just("1"),
                ],
                0..40,
            ).prop_map(|parts| parts.concat())
        ) {
            let _ = parse(&sql, true);
        }

        #[test]
        fn sanitized_names_are_bounded(name in "\\PC{0,100}") {
            if let Some(t) = TableName::sanitize(&name) {
                prop_assert!(t.as_str().len() <= MAX_TABLE_NAME_LEN);
                prop_assert!(t.as_str().bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.'));
            }
        }
    }
}
