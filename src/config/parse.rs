//! The conntrackd.conf 1.4.7 grammar: tokens → a small AST, collecting every syntax error.
//!
//! The grammar is the C daemon's bison grammar restated as a table: for each block
//! ([`Ctx`]) and keyword, [`shape`] says what must follow the keyword. Every statement of
//! the file has the form `Keyword args… [{ body }]`, so one generic [`Stmt`] node holds
//! them all; the lowering pass gives them meaning.
//!
//! The C parser stops at its first error. We report it and go on: after a bad statement
//! the parser skips to the next keyword that can start a statement in the same block, or
//! to the `}` closing the block (nested `{ … }` are skipped whole). A section keyword
//! (`General`, `Sync`, `Stats`, `Helper`) met inside a block means a `}` is missing: the
//! parser reports that once and resumes at top level.

use super::error::{Error, Span};
use super::grammar::{Ctx, Shape, hint, misplaced, shape, tcp_state};
use super::lex::{Kw, ModeName, Tok, Token};

/// One argument after a keyword.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Val {
    Bool(bool),
    Num(i32),
    Signed(i32),
    Path(String),
    Word(String),
    Ip(String),
    Kw(Kw),
    Mode(ModeName),
}

/// An argument and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Arg {
    pub(crate) val: Val,
    pub(crate) span: Span,
}

/// The inside of `{ … }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Content {
    /// Statements (most blocks).
    Stmts(Vec<Stmt>),
    /// Bare items: protocol names, helper names, TCP states.
    Items(Vec<Arg>),
}

/// `Keyword args… [{ body }]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stmt {
    pub(crate) kw: Kw,
    pub(crate) span: Span,
    pub(crate) args: Vec<Arg>,
    pub(crate) body: Option<Content>,
}

impl Stmt {
    /// The statements of the body (empty for list bodies or none).
    pub(crate) fn stmts(&self) -> &[Self] {
        match &self.body {
            Some(Content::Stmts(v)) => v,
            _ => &[],
        }
    }

    /// The items of a list body (empty otherwise).
    pub(crate) fn items(&self) -> &[Arg] {
        match &self.body {
            Some(Content::Items(v)) => v,
            _ => &[],
        }
    }
}

/// Parses a token stream (ending with `Eof`) into the top-level sections.
pub(crate) fn parse(tokens: &[Token]) -> (Vec<Stmt>, Vec<Error>) {
    let mut p = Parser {
        toks: tokens,
        pos: 0,
        errors: Vec::new(),
        unwinding: false,
    };
    let mut out = Vec::new();
    loop {
        match p.peek().clone() {
            Tok::Eof => break,
            Tok::Kw(k) if shape(Ctx::Top, k).is_some() => match p.stmt(Ctx::Top, k) {
                Ok(s) => {
                    out.push(s);
                    p.unwinding = false;
                }
                Err(Fail::Recover) => p.recover(Ctx::Top),
            },
            other => {
                let span = p.span();
                p.errors.push(Error::syntax(
                    span,
                    format!(
                        "found {}{}, expected a section: `General`, `Sync`, `Stats` or `Helper`",
                        other.describe(),
                        hint(&other, Ctx::Top)
                    ),
                ));
                p.bump();
                p.recover(Ctx::Top);
            }
        }
    }
    (out, p.errors)
}

/// The statement is bad: skip to the next statement of the same block.
enum Fail {
    Recover,
}

struct Parser<'t> {
    toks: &'t [Token],
    pos: usize,
    errors: Vec<Error>,
    /// A `}` is missing (section keyword or end of file met inside a block): every open
    /// block ends here, keeping what it parsed, and parsing resumes at top level.
    unwinding: bool,
}

fn is_section(k: Kw) -> bool {
    matches!(k, Kw::General | Kw::Sync | Kw::Stats | Kw::Helper)
}

impl Parser<'_> {
    /// The current token; [`Tok::Stop`] reads as the end of input, as in C.
    fn peek(&self) -> &Tok {
        match self.toks.get(self.pos).map(|t| &t.tok) {
            Some(Tok::Stop(_)) | None => &Tok::Eof,
            Some(t) => t,
        }
    }

    fn span(&self) -> Span {
        self.toks
            .get(self.pos)
            .or_else(|| self.toks.last())
            .map_or_else(Span::default, |t| t.span)
    }

    fn starts_line(&self) -> bool {
        match (
            self.pos.checked_sub(1).and_then(|i| self.toks.get(i)),
            self.toks.get(self.pos),
        ) {
            (Some(prev), Some(cur)) => prev.span.line < cur.span.line,
            _ => true,
        }
    }

    fn bump(&mut self) {
        if self.pos < self.toks.len() {
            self.pos += 1;
        }
    }

    fn push_arg(&mut self, args: &mut Vec<Arg>, val: Val) {
        args.push(Arg {
            val,
            span: self.span(),
        });
        self.bump();
    }

    fn fail(&mut self, msg: String) -> Fail {
        let span = self.span();
        self.errors.push(Error::syntax(span, msg));
        Fail::Recover
    }

    /// Skips to a token where a statement of `ctx` may start, or to the `}` ending it.
    fn recover(&mut self, ctx: Ctx) {
        let mut depth = 0u32;
        loop {
            match self.peek() {
                Tok::Eof => return,
                Tok::Char('{') => depth += 1,
                Tok::Char('}') if depth == 0 => return,
                Tok::Char('}') => depth -= 1,
                Tok::Kw(k) if depth == 0 && (shape(ctx, *k).is_some() || is_section(*k)) => {
                    return;
                }
                // A word first on its line is most likely a misspelt keyword: report it
                // rather than skip it silently.
                Tok::Word(_) if depth == 0 && self.starts_line() => return,
                _ => {}
            }
            self.bump();
        }
    }

    fn expect_open(&mut self, what: &str) -> Result<Span, Fail> {
        if *self.peek() == Tok::Char('{') {
            let s = self.span();
            self.bump();
            Ok(s)
        } else {
            let found = self.peek().describe();
            Err(self.fail(format!("found {found}, expected `{{` after {what}")))
        }
    }

    /// One statement whose keyword `kw` (allowed in `ctx`) is the current token.
    fn stmt(&mut self, ctx: Ctx, kw: Kw) -> Result<Stmt, Fail> {
        let span = self.span();
        self.bump();
        let Some(shape) = shape(ctx, kw) else {
            return Err(Fail::Recover);
        };
        let name = format!("`{}`", kw.text());
        let mut args = Vec::new();
        let tok = self.peek().clone();
        let bool_val = match tok {
            Tok::On => Some(Val::Bool(true)),
            Tok::Off => Some(Val::Bool(false)),
            _ => None,
        };
        let simple = match (shape, tok.clone()) {
            (Shape::Num | Shape::BoolOrNum, Tok::Number(n)) => Some(Some(Val::Num(n))),
            (Shape::Signed, Tok::Signed(n)) => Some(Some(Val::Signed(n))),
            (Shape::Path | Shape::BoolOrPath, Tok::Path(s)) => Some(Some(Val::Path(s))),
            (Shape::Word | Shape::BoolOrWord, Tok::Word(s)) => Some(Some(Val::Word(s))),
            (Shape::Ip, Tok::Ip(s)) => Some(Some(Val::Ip(s))),
            (Shape::Bool | Shape::BoolOrPath | Shape::BoolOrWord | Shape::BoolOrNum, _) => {
                Some(bool_val.clone())
            }
            (Shape::Num | Shape::Signed | Shape::Path | Shape::Word | Shape::Ip, _) => Some(None),
            _ => None,
        };
        let mut body = None;
        let want: &str = match (shape, simple) {
            (_, Some(Some(val))) => {
                self.push_arg(&mut args, val);
                ""
            }
            (Shape::Num, _) => "a decimal number",
            (Shape::Signed, _) => "a signed number such as `-1` or `+5` (the sign is mandatory)",
            (Shape::Path, _) => "an absolute path",
            (Shape::Word, _) => "a name (a letter followed by letters, digits, `.`, `-`, `_`)",
            (Shape::Ip, _) => "an IP address",
            (Shape::Bool, _) => "`on`, `off`, `yes` or `no`",
            (Shape::BoolOrPath, _) => "`on`, `off` or an absolute path",
            (Shape::BoolOrWord, _) => {
                "`on`, `off` or a facility name (`daemon`, `local0`…`local7`)"
            }
            (Shape::BoolOrNum, _) => "`on`, `off` or a number of seconds",
            (Shape::Block(c), _) => {
                body = Some(self.block_after(c, &name)?);
                ""
            }
            (Shape::OptDefaultBlock(c), _) => {
                if tok == Tok::Kw(Kw::Default) {
                    self.push_arg(&mut args, Val::Kw(Kw::Default));
                }
                if matches!(self.peek(), Tok::Char('{')) {
                    body = Some(self.block_after(c, &name)?);
                    ""
                } else {
                    "`Default` or `{`"
                }
            }
            (Shape::FilterBlock, _) => {
                if tok == Tok::Kw(Kw::From) {
                    self.push_arg(&mut args, Val::Kw(Kw::From));
                    match self.peek().clone() {
                        Tok::Kw(k @ (Kw::Userspace | Kw::Kernelspace)) => {
                            self.push_arg(&mut args, Val::Kw(k));
                        }
                        t => {
                            return Err(self.fail(format!(
                                "found {}, expected `Userspace` or `Kernelspace` after `Filter From`",
                                t.describe()
                            )));
                        }
                    }
                }
                if matches!(self.peek(), Tok::Char('{')) {
                    body = Some(self.block_after(Ctx::Filter, &name)?);
                    ""
                } else {
                    "`From Userspace`, `From Kernelspace` or `{`"
                }
            }
            (Shape::LogicBlock(c), _) => match tok {
                Tok::Kw(k @ (Kw::Accept | Kw::Ignore)) => {
                    self.push_arg(&mut args, Val::Kw(k));
                    body = Some(self.block_after(c, &format!("{name} {}", k.text()))?);
                    ""
                }
                _ => "`Accept` or `Ignore`",
            },
            (Shape::ModeBlock, _) => match tok {
                Tok::Mode(m) => {
                    self.push_arg(&mut args, Val::Mode(m));
                    let c = match m {
                        ModeName::Alarm | ModeName::Persistent => Ctx::ModeAlarm,
                        ModeName::Ftfw | ModeName::Nack => Ctx::ModeFtfw,
                        ModeName::Notrack => Ctx::ModeNotrack,
                    };
                    body = Some(self.block_after(c, &format!("`Mode {}`", m.text()))?);
                    ""
                }
                Tok::Word(ref w) if w == "persistent" => {
                    "`ALARM`, `FTFW` or `NOTRACK` (the legacy name `persistent` is only \
                     accepted with an upper-case final T, as `PERSISTENT`)"
                }
                _ => "a sync mode: `ALARM`, `FTFW` or `NOTRACK`",
            },
            (Shape::BoolOrWordList, _) => match (bool_val, &tok) {
                (Some(v), _) => {
                    self.push_arg(&mut args, v);
                    ""
                }
                (None, Tok::Char('{')) => {
                    body = Some(self.block_after(Ctx::ExpectList, &name)?);
                    ""
                }
                _ => "`on`, `off` or `{` with a list of helper names",
            },
            (Shape::HelperType, _) => {
                for what in ["a helper name", "`inet` or `inet6`", "`tcp` or `udp`"] {
                    match self.peek().clone() {
                        Tok::Word(s) => self.push_arg(&mut args, Val::Word(s)),
                        t => {
                            return Err(self.fail(format!(
                                "found {}, expected {what} in `Type helper l3proto l4proto {{ … }}`",
                                t.describe()
                            )));
                        }
                    }
                }
                body = Some(self.block_after(Ctx::HelperType, "`Type`")?);
                ""
            }
            (Shape::WordBlock(c), _) => match tok {
                Tok::Word(s) => {
                    self.push_arg(&mut args, Val::Word(s));
                    body = Some(self.block_after(c, &name)?);
                    ""
                }
                _ => "a policy name",
            },
        };
        if !want.is_empty() {
            let found = self.peek().describe();
            let why = reserved(self.peek());
            return Err(self.fail(format!("found {found}{why}, expected {want} after {name}")));
        }
        Ok(Stmt {
            kw,
            span,
            args,
            body,
        })
    }

    /// `{` then the body of a `ctx` block up to and including its `}`.
    fn block_after(&mut self, ctx: Ctx, opener: &str) -> Result<Content, Fail> {
        let open = self.expect_open(opener)?;
        match ctx {
            Ctx::ProtocolList | Ctx::ExpectList | Ctx::StateList => {
                self.list(ctx, open, opener).map(Content::Items)
            }
            _ => self.block(ctx, open, opener).map(Content::Stmts),
        }
    }

    fn missing_close(&mut self, open: Span, opener: &str) {
        if !self.unwinding {
            let found = match self.toks.get(self.pos) {
                Some(
                    t @ Token {
                        tok: Tok::Stop(_), ..
                    },
                ) => t.tok.describe(),
                _ => self.peek().describe(),
            };
            self.fail(format!(
                "found {found}, expected `}}` to close {opener} opened at {open}"
            ));
        }
        self.unwinding = true;
    }

    fn block(&mut self, ctx: Ctx, open: Span, opener: &str) -> Result<Vec<Stmt>, Fail> {
        let mut out = Vec::new();
        loop {
            match self.peek().clone() {
                Tok::Char('}') => {
                    self.bump();
                    return Ok(out);
                }
                Tok::Eof => {
                    self.missing_close(open, opener);
                    return Ok(out);
                }
                Tok::Kw(k) if is_section(k) => {
                    self.missing_close(open, opener);
                    return Ok(out);
                }
                Tok::Kw(k) if shape(ctx, k).is_some() => match self.stmt(ctx, k) {
                    Ok(s) => {
                        out.push(s);
                        if self.unwinding {
                            return Ok(out);
                        }
                    }
                    Err(Fail::Recover) => self.recover(ctx),
                },
                other => {
                    let msg = misplaced(&other, ctx);
                    self.fail(msg);
                    self.bump();
                    self.recover(ctx);
                }
            }
        }
    }

    /// Bare lists: protocol names, `ExpectationSync` helper names, and TCP states
    /// (`STATE … for TCP`, repeated).
    fn list(&mut self, ctx: Ctx, open: Span, opener: &str) -> Result<Vec<Arg>, Fail> {
        let mut out = Vec::new();
        let mut pending_states = false;
        loop {
            let span = self.span();
            let tok = self.peek().clone();
            let item = match (ctx, &tok) {
                (_, Tok::Char('}')) if ctx == Ctx::StateList && pending_states => {
                    self.fail("found `}`, expected `for TCP` after the TCP states".into());
                    self.bump();
                    return Ok(out);
                }
                (_, Tok::Char('}')) => {
                    self.bump();
                    return Ok(out);
                }
                (_, Tok::Eof) => {
                    self.missing_close(open, opener);
                    return Ok(out);
                }
                (_, Tok::Kw(k)) if is_section(*k) => {
                    self.missing_close(open, opener);
                    return Ok(out);
                }
                (Ctx::ProtocolList | Ctx::ExpectList, Tok::Word(w)) => Some(Val::Word(w.clone())),
                (Ctx::ProtocolList, Tok::Kw(k @ (Kw::Tcp | Kw::Udp))) => Some(Val::Kw(*k)),
                (Ctx::StateList, Tok::Kw(k)) if tcp_state(*k) => {
                    pending_states = true;
                    Some(Val::Kw(*k))
                }
                (Ctx::StateList, Tok::Kw(Kw::For)) => {
                    self.bump();
                    if *self.peek() == Tok::Kw(Kw::Tcp) {
                        self.bump();
                        pending_states = false;
                        continue;
                    }
                    let found = self.peek().describe();
                    self.fail(format!(
                        "found {found}, expected `TCP` after `for` (upper case, the only protocol with states)"
                    ));
                    None
                }
                _ => {
                    let want = match ctx {
                        Ctx::ProtocolList => {
                            "a protocol name from /etc/protocols (`TCP`, `UDP`, `icmp`, `sctp`…)"
                        }
                        Ctx::ExpectList => "a helper name (`ftp`, `sip`, `h.245`…)",
                        _ => {
                            "a TCP state (`SYN_SENT`, `SYN_RECV`, `ESTABLISHED`, `FIN_WAIT`, \
                             `CLOSE_WAIT`, `LAST_ACK`, `TIME_WAIT`, `CLOSE`, `LISTEN`) or `for TCP`"
                        }
                    };
                    self.fail(format!("found {}, expected {want} or `}}`", tok.describe()));
                    None
                }
            };
            match item {
                Some(val) => {
                    out.push(Arg { val, span });
                    self.bump();
                }
                None => {
                    if !matches!(self.peek(), Tok::Char('}') | Tok::Eof) {
                        self.bump();
                    }
                }
            }
        }
    }
}

/// Why a token that looks like a name is not one: the 1.4.7 lexer reserves these.
fn reserved(tok: &Tok) -> &'static str {
    match tok {
        Tok::Ip(s) if !s.contains([':', '.', '/']) => {
            " (a word made only of hex digits is read as an IPv6 address by the 1.4.7 lexer)"
        }
        Tok::Kw(_) => " (keywords are reserved words)",
        Tok::Mode(_) => " (sync mode names are reserved words)",
        Tok::On | Tok::Off => " (on, off, yes and no are reserved words)",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::lex::lex;

    fn parse_text(s: &str) -> (Vec<Stmt>, Vec<Error>) {
        parse(&lex(s))
    }

    fn errors(s: &str) -> Vec<String> {
        parse_text(s)
            .1
            .into_iter()
            .map(|e| format!("{}: {}", e.span.unwrap_or_default(), e.message))
            .collect()
    }

    #[test]
    fn test_parse_ast_shape() {
        let (ast, errs) = parse_text(
            "General { HashSize 10 Filter From Kernelspace { Protocol Ignore { TCP sctp } } }\n\
             Sync { Multicast Default { Checksum off } Mode FTFW { } }",
        );
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(ast.len(), 2);
        let g = &ast[0];
        assert_eq!(g.kw, Kw::General);
        assert_eq!(g.stmts()[0].args[0].val, Val::Num(10));
        let f = &g.stmts()[1];
        assert_eq!(f.args[1].val, Val::Kw(Kw::Kernelspace));
        let p = &f.stmts()[0];
        assert_eq!(p.args[0].val, Val::Kw(Kw::Ignore));
        assert_eq!(p.items()[1].val, Val::Word("sctp".into()));
        let m = &ast[1].stmts()[0];
        assert_eq!(m.args[0].val, Val::Kw(Kw::Default));
        assert_eq!(m.stmts()[0].args[0].val, Val::Bool(false));
    }

    #[test]
    fn test_parse_collects_all_errors() {
        let e = errors("General {\n HashSize x\n Lockfile /a\n Nice 5\n}\nStats { Bogus }\n");
        assert_eq!(e.len(), 4, "{e:?}");
        assert!(e[0].starts_with("2:11: found word `x`"));
        assert!(e[1].starts_with("3:2:") && e[1].contains("the keyword is `LockFile`"));
        assert!(e[2].starts_with("4:7:") && e[2].contains("sign is mandatory"));
        assert!(e[3].starts_with("6:9:"));
    }

    #[test]
    fn test_parse_missing_brace_reported_once() {
        let e = errors("Sync {\n Mode FTFW {\n\nGeneral { HashSize 1 }\n");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("4:1: found keyword `General`, expected `}` to close `Mode FTFW`")
        );
        // The General section after it is still parsed.
        let (ast, _) = parse_text("Sync {\n Mode FTFW {\n\nGeneral { HashSize 1 }\n");
        assert_eq!(ast.len(), 2);
        let e = errors("General { UNIX { Path /x");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].contains("end of file"));
    }

    #[test]
    fn test_parse_misplaced_keyword() {
        let e = errors("Sync { Mode FTFW { RefreshTime 5 } }");
        assert_eq!(e.len(), 1);
        assert!(e[0].contains("not allowed in `Mode FTFW`; it belongs in `Sync` or `Mode ALARM`"));
        let e = errors("Sync { Filter { } }");
        assert!(e[0].contains("belongs in `General`"), "{e:?}");
    }

    #[test]
    fn test_parse_state_list() {
        assert!(errors("General { Filter { State Accept { for TCP for TCP } } }").is_empty());
        assert!(errors("General { Filter { State Accept { CLOSED LISTEN for TCP } } }").is_empty());
        let e = errors("General { Filter { State Accept { ESTABLISHED for tcp } } }");
        assert!(e[0].contains("expected `TCP` after `for`"), "{e:?}");
        let e = errors("General { Filter { State Accept { ESTABLISHED } } }");
        assert!(e[0].contains("expected `for TCP`"), "{e:?}");
    }

    #[test]
    fn test_parse_helper_grammar() {
        assert!(
            errors("Helper { QueueNum 1 Type ftp inet tcp { Type tftp inet udp { } } }").is_empty()
        );
        let e = errors("Helper { Type ftp inet TCP { } }");
        assert!(e[0].contains("expected `tcp` or `udp`"), "{e:?}");
    }

    #[test]
    fn test_parse_removed_keyword_hint() {
        let e = errors("IgnoreProtocol { UDP }");
        assert!(e[0].contains("removed in 1.4.7"), "{e:?}");
        assert!(e[0].starts_with("1:1:"));
    }

    #[test]
    fn test_parse_expectation_sync_forms() {
        assert!(errors("Sync { Options { ExpectationSync on } }").is_empty());
        assert!(errors("Sync { Options { ExpectationSync { ftp h.245 } } }").is_empty());
        let e = errors("Sync { Options { ExpectationSync { ftp 5 } } }");
        assert!(e[0].contains("expected a helper name"), "{e:?}");
    }
}
