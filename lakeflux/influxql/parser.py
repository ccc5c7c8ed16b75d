"""A hand-written recursive-descent parser for InfluxQL (the statements InfluxDB 3 answers, plus CREATE/DROP
DATABASE), producing `ast` values.

Scanning is driven by the parser: a `/` where an operand is expected starts a regular expression, where
an operator is expected it divides. Errors are `ParseError`s carrying the byte position, worded like
InfluxDB 3's ("... at pos N"), so clients see the same kind of message for the same mistake.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import ast as A

KEYWORDS = frozenset("""
ALL ALTER ANALYZE AND ANY AS ASC BEGIN BY CARDINALITY CREATE CONTINUOUS DATABASE DATABASES DEFAULT DELETE DESC
DESTINATIONS DIAGNOSTICS DISTINCT DROP DURATION END EVERY EXACT EXPLAIN FIELD FOR FROM GRANT GRANTS GROUP GROUPS
IN INF INSERT INTO KEY KEYS KILL LIMIT MEASUREMENT MEASUREMENTS NAME OFFSET OR ON ORDER PASSWORD POLICY POLICIES
PRIVILEGES QUERIES QUERY READ REPLICATION RESAMPLE RETENTION REVOKE SELECT SERIES SET SHOW SHARD SHARDS SLIMIT
SOFFSET STATS SUBSCRIPTION SUBSCRIPTIONS TAG TO USER USERS VALUES WHERE WITH WRITE
""".split())

# Nanoseconds per duration unit; `µ` and `u` are microseconds.
DURATION_UNITS = {"ns": 1, "u": 1_000, "µ": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000,
                  "h": 3_600_000_000_000, "d": 86_400_000_000_000, "w": 604_800_000_000_000}

INVALID_SHOW = ("invalid SHOW statement, expected DATABASES, FIELD KEYS, MEASUREMENTS, TAG KEYS, TAG VALUES, "
                "or RETENTION POLICIES following SHOW")

# Binary operator precedence (higher binds tighter), as in InfluxQL.
_PRECEDENCE = {"OR": 1, "AND": 2, "=": 4, "!=": 4, "<>": 4, "<": 4, "<=": 4, ">": 4, ">=": 4, "=~": 4, "!~": 4,
               "+": 5, "-": 5, "|": 5, "^": 5, "*": 6, "/": 6, "%": 6, "&": 6}
_TWO_CHAR_OPS = ("<=", ">=", "!=", "<>", "=~", "!~", "::")
_ONE_CHAR_OPS = "+-*/%&|^=<>(),;."


class ParseError(Exception):
    def __init__(self, message: str, pos: int) -> None:
        super().__init__(f"{message} at pos {pos}")
        self.message = message
        self.pos = pos


@dataclass(frozen=True)
class Token:
    kind: str  # IDENT QIDENT STRING INTEGER NUMBER DURATION PARAM OP EOF ILLEGAL
    text: str
    pos: int
    value: object = None

    def is_keyword(self, *words: str) -> bool:
        return self.kind == "IDENT" and self.text.upper() in words

    def is_op(self, *ops: str) -> bool:
        return self.kind == "OP" and self.text in ops


def parse(text: str) -> list[A.Statement]:
    """Every statement of `text` (`;`-separated; empty statements skipped)."""
    return _Parser(text).statements()


def parse_one(text: str) -> A.Statement:
    statements = parse(text)
    if len(statements) != 1:
        raise ParseError("expected exactly one InfluxQL statement", 0)
    return statements[0]


class _Parser:
    def __init__(self, text: str) -> None:
        self.s = text
        self.pos = 0
        self._peeked: Token | None = None

    # --- scanning ---------------------------------------------------------------------------------------

    def _skip_space(self) -> None:
        s, n = self.s, len(self.s)
        while self.pos < n:
            c = s[self.pos]
            if c.isspace():
                self.pos += 1
            elif s.startswith("--", self.pos):
                end = s.find("\n", self.pos)
                self.pos = n if end < 0 else end + 1
            elif s.startswith("/*", self.pos):
                end = s.find("*/", self.pos + 2)
                if end < 0:
                    raise ParseError("invalid inline comment, missing closing */", self.pos)
                self.pos = end + 2
            else:
                return

    def peek(self) -> Token:
        if self._peeked is None:
            self._peeked = self._scan()
        return self._peeked

    def next(self) -> Token:
        tok = self.peek()
        self._peeked = None
        self.pos = self._after
        return tok

    def _scan(self) -> Token:
        save = self.pos
        self._skip_space()
        start = self.pos
        tok = self._scan_at(start)
        self._after = self.pos
        self.pos = save
        return tok

    def _scan_at(self, start: int) -> Token:
        s, n = self.s, len(self.s)
        if start >= n:
            return Token("EOF", "", start)
        c = s[start]
        if c == '"':
            text = self._quoted('"', start)
            return Token("QIDENT", text, start)
        if c == "'":
            text = self._quoted("'", start)
            return Token("STRING", text, start)
        if c == "$":
            end = start + 1
            if end < n and s[end] == '"':
                self.pos = end
                name = self._quoted('"', end)
                return Token("PARAM", name, start)
            while end < n and (s[end].isalnum() or s[end] == "_"):
                end += 1
            if end == start + 1:
                raise ParseError("invalid bind parameter, expected identifier", start)
            self.pos = end
            return Token("PARAM", s[start + 1:end], start)
        if c.isdigit() or (c == "." and start + 1 < n and s[start + 1].isdigit()):
            return self._number(start)
        if c.isalpha() or c == "_":
            end = start + 1
            while end < n and (s[end].isalnum() or s[end] == "_"):
                end += 1
            self.pos = end
            return Token("IDENT", s[start:end], start)
        for op in _TWO_CHAR_OPS:
            if s.startswith(op, start):
                self.pos = start + 2
                return Token("OP", op, start)
        if c in _ONE_CHAR_OPS:
            self.pos = start + 1
            return Token("OP", c, start)
        self.pos = start + 1
        return Token("ILLEGAL", c, start)

    def _quoted(self, quote: str, start: int) -> str:
        s, n = self.s, len(self.s)
        out = []
        i = start + 1
        while i < n:
            c = s[i]
            if c == "\\" and i + 1 < n:
                nxt = s[i + 1]
                if nxt in (quote, "\\"):
                    out.append(nxt)
                elif nxt == "n" and quote == "'":
                    out.append("\n")
                else:
                    out.append(c + nxt)
                i += 2
                continue
            if c == quote:
                self.pos = i + 1
                return "".join(out)
            if c == "\n" and quote == "'":
                break
            out.append(c)
            i += 1
        kind = "string" if quote == "'" else "identifier"
        raise ParseError(f"unterminated quoted {kind}", start)

    def _number(self, start: int) -> Token:
        s, n = self.s, len(self.s)
        end = start
        while end < n and s[end].isdigit():
            end += 1
        is_float = False
        if end < n and s[end] == "." and end + 1 < n and s[end + 1].isdigit():
            is_float = True
            end += 1
            while end < n and s[end].isdigit():
                end += 1
        if end < n and s[end] in "eE" and end + 1 < n and (s[end + 1].isdigit() or
                                                            (s[end + 1] in "+-" and end + 2 < n and s[end + 2].isdigit())):
            is_float = True
            end += 2
            while end < n and s[end].isdigit():
                end += 1
        if not is_float:
            duration = self._duration_from(start)
            if duration is not None:
                return duration
        self.pos = end
        text = s[start:end]
        if is_float:
            return Token("NUMBER", text, start, float(text))
        return Token("INTEGER", text, start, int(text))

    def _duration_from(self, start: int) -> Token | None:
        """A duration literal such as `10s`, `1h30m` or `1700000000000ms` starting at `start`, if one is there."""
        s, n = self.s, len(self.s)
        i, total = start, 0
        while i < n and s[i].isdigit():
            j = i
            while j < n and s[j].isdigit():
                j += 1
            unit = None
            for u in ("ns", "ms", "µ", "u", "s", "m", "h", "d", "w"):
                if s.startswith(u, j):
                    unit = u
                    break
            if unit is None:
                return None if i == start else Token("ILLEGAL", s[start:j], start)
            end = j + len(unit)
            if end < n and (s[end].isalpha() or s[end] == "_") and not s[end].isdigit():
                return None if i == start else Token("ILLEGAL", s[start:end], start)
            total += int(s[i:j]) * DURATION_UNITS[unit]
            i = end
        self.pos = i
        return Token("DURATION", s[start:i], start, total)

    def _scan_regex(self) -> A.RegexLit | None:
        """A `/.../` regular expression at the current position, or None when there is none."""
        self._peeked = None
        self._skip_space()
        s, n = self.s, len(self.s)
        if self.pos >= n or s[self.pos] != "/":
            return None
        start = self.pos
        i = start + 1
        out = []
        while i < n:
            c = s[i]
            if c == "\\" and i + 1 < n and s[i + 1] == "/":
                out.append("/")
                i += 2
                continue
            if c == "/":
                self.pos = i + 1
                return A.RegexLit("".join(out))
            out.append(c)
            i += 1
        raise ParseError("unterminated regular expression", start)

    # --- helpers ----------------------------------------------------------------------------------------

    def error(self, message: str, tok: Token | None = None) -> ParseError:
        return ParseError(message, (tok or self.peek()).pos)

    def keyword(self, *words: str) -> bool:
        """Consume the next token if it is one of `words` (case-insensitive)."""
        if self.peek().is_keyword(*words):
            self.next()
            return True
        return False

    def expect_keyword(self, word: str, message: str) -> None:
        if not self.keyword(word):
            raise self.error(message)

    def op(self, *ops: str) -> bool:
        if self.peek().is_op(*ops):
            self.next()
            return True
        return False

    def expect_op(self, op: str, message: str) -> None:
        if not self.op(op):
            raise self.error(message)

    def identifier(self, message: str = "expected identifier") -> str:
        tok = self.peek()
        if tok.kind == "QIDENT" or (tok.kind == "IDENT" and tok.text.upper() not in KEYWORDS):
            self.next()
            return tok.text
        raise self.error(message)

    def unsigned(self, message: str) -> int:
        tok = self.peek()
        if tok.kind != "INTEGER":
            raise self.error(message)
        self.next()
        return int(tok.value)  # type: ignore[call-overload]

    def at_statement_end(self) -> bool:
        tok = self.peek()
        return tok.kind == "EOF" or tok.is_op(";")

    # --- statements -------------------------------------------------------------------------------------

    def statements(self) -> list[A.Statement]:
        out: list[A.Statement] = []
        while True:
            tok = self.peek()
            if tok.kind == "EOF":
                return out
            if tok.is_op(";"):
                self.next()
                continue
            out.append(self.statement())
            if not self.at_statement_end():
                raise self.error(f"invalid InfluxQL statement, unexpected '{self.peek().text}'")

    def statement(self) -> A.Statement:
        tok = self.peek()
        if tok.is_keyword("SELECT"):
            return self.select()
        if tok.is_keyword("SHOW"):
            return self.show()
        if tok.is_keyword("CREATE"):
            return self.create()
        if tok.is_keyword("DROP"):
            return self.drop()
        if tok.is_keyword("DELETE"):
            self.next()
            if not self.peek().is_keyword("FROM", "WHERE"):
                raise self.error("invalid DELETE statement, expected FROM or WHERE")
            self._skip_statement()
            return A.NotImplementedStatement("DELETE")
        if tok.is_keyword("EXPLAIN"):
            self.next()
            analyze = self.keyword("ANALYZE")
            self.keyword("VERBOSE")
            if not self.peek().is_keyword("SELECT"):
                raise self.error("invalid EXPLAIN statement, expected InfluxQL statement")
            return A.Explain(self.select(), analyze)
        raise ParseError("invalid InfluxQL statement", tok.pos)

    def _skip_statement(self) -> None:
        while not self.at_statement_end():
            if self.peek().kind == "ILLEGAL" and self.peek().text == "/":
                self._scan_regex()
            else:
                self.next()

    # --- SELECT -------------------------------------------------------------------------------------

    def select(self, subquery: bool = False) -> A.SelectStatement:
        self.expect_keyword("SELECT", "expected SELECT")
        fields = self.field_list()
        if self.peek().is_keyword("INTO"):
            raise self.error("invalid SELECT statement, SELECT INTO is not supported")
        if not self.keyword("FROM"):
            raise self.error("invalid SELECT statement, expected FROM clause")
        sources = self.from_sources()
        condition = self.expr() if self.keyword("WHERE") else None
        dimensions: tuple[A.Dimension, ...] = ()
        if self.keyword("GROUP"):
            self.expect_keyword("BY", "invalid GROUP BY clause, expected BY")
            dimensions = self.dimensions()
        fill, fill_given = A.Fill(), False
        if self.peek().is_keyword("FILL"):
            fill, fill_given = self.fill(), True
        descending = False
        if self.keyword("ORDER"):
            self.expect_keyword("BY", "invalid ORDER BY clause, expected BY")
            descending = self.order_by()
        limit = self.unsigned("invalid LIMIT clause, expected unsigned integer") if self.keyword("LIMIT") else 0
        offset = self.unsigned("invalid OFFSET clause, expected unsigned integer") if self.keyword("OFFSET") else 0
        slimit = self.unsigned("invalid SLIMIT clause, expected unsigned integer") if self.keyword("SLIMIT") else 0
        soffset = self.unsigned("invalid SOFFSET clause, expected unsigned integer") if self.keyword("SOFFSET") else 0
        timezone = None
        if self.peek().is_keyword("TZ"):
            self.next()
            self.expect_op("(", "invalid TZ clause, expected (")
            tok = self.peek()
            if tok.kind != "STRING":
                raise self.error("invalid TZ clause, expected string")
            self.next()
            timezone = tok.text
            self.expect_op(")", "invalid TZ clause, expected )")
        if not subquery and not self.at_statement_end():
            raise self.error(f"invalid SELECT statement, unexpected '{self.peek().text}'")
        return A.SelectStatement(fields=fields, sources=sources, condition=condition, dimensions=dimensions,
                                 fill=fill, fill_given=fill_given, descending=descending, limit=limit,
                                 offset=offset, slimit=slimit, soffset=soffset, timezone=timezone)

    def field_list(self) -> tuple[A.Field, ...]:
        fields = [self.field()]
        while self.op(","):
            fields.append(self.field())
        return tuple(fields)

    def field(self) -> A.Field:
        tok = self.peek()
        if tok.kind == "EOF" or tok.is_keyword("FROM"):
            raise self.error("invalid SELECT statement, expected field")
        if tok.is_keyword("DISTINCT"):
            self.next()
            if self.op("("):
                name = self.identifier("invalid DISTINCT expression, expected identifier")
                self.expect_op(")", "invalid DISTINCT expression, expected )")
            else:
                name = self.identifier("invalid DISTINCT expression, expected identifier")
            expr: A.Expr = A.Call("distinct", (A.VarRef(name),))
        else:
            expr = self.expr()
        alias = None
        if self.keyword("AS"):
            alias = self.identifier("invalid field alias, expected identifier")
        return A.Field(expr, alias)

    def from_sources(self) -> tuple[A.Source, ...]:
        sources = [self.source(allow_subquery=True)]
        while self.op(","):
            sources.append(self.source(allow_subquery=True))
        return tuple(sources)

    def source(self, allow_subquery: bool) -> A.Source:
        if allow_subquery and self.peek().is_op("("):
            self.next()
            if not self.peek().is_keyword("SELECT"):
                raise self.error("invalid FROM clause, expected identifier, regular expression or subquery")
            stmt = self.select(subquery=True)
            self.expect_op(")", "invalid FROM clause, expected ) after subquery")
            return A.SubQuery(stmt)
        return self.measurement()

    def measurement(self) -> A.Measurement:
        """[db.[rp].]name | regex, with InfluxQL's `db..name` form for the default policy."""
        parts: list[str | A.RegexLit | None] = []
        while True:
            regex = self._scan_regex()
            if regex is not None:
                parts.append(regex)
                break
            tok = self.peek()
            if tok.kind in ("QIDENT", "IDENT") and not (tok.kind == "IDENT" and tok.text.upper() in KEYWORDS):
                self.next()
                parts.append(tok.text)
            elif parts and tok.is_op("."):
                parts.append(None)  # `db..m`: empty retention policy
                self.next()
                continue
            else:
                raise self.error("invalid FROM clause, expected identifier, regular expression or subquery")
            if len(parts) >= 3 or not self.op("."):
                break
        last = parts[-1]
        qualifiers: list[str | None] = []
        for q in parts[:-1]:
            if isinstance(q, A.RegexLit) or len(qualifiers) == 2:
                raise self.error("invalid FROM clause, expected measurement name")
            qualifiers.append(q)
        database: str | None = None
        retention_policy: str | None = None
        if len(qualifiers) == 2:
            database, retention_policy = qualifiers
        elif len(qualifiers) == 1:
            retention_policy = qualifiers[0]
        if isinstance(last, A.RegexLit):
            return A.Measurement(regex=last, database=database, retention_policy=retention_policy)
        if last is None:
            raise self.error("invalid FROM clause, expected measurement name")
        return A.Measurement(name=last, database=database, retention_policy=retention_policy)

    def dimensions(self) -> tuple[A.Dimension, ...]:
        dims = [self.dimension()]
        while self.op(","):
            dims.append(self.dimension())
        return tuple(dims)

    def dimension(self) -> A.Dimension:
        regex = self._scan_regex()
        if regex is not None:
            return A.RegexDimension(regex)
        tok = self.peek()
        if tok.is_op("*"):
            self.next()
            return A.WildcardDimension()
        if tok.kind == "IDENT" and tok.text.lower() == "time":
            self.next()
            if self.op("("):
                return self.time_dimension()
            return A.TagDimension(tok.text)
        if tok.kind in ("QIDENT", "IDENT") and not (tok.kind == "IDENT" and tok.text.upper() in KEYWORDS):
            self.next()
            if self.op("::"):  # `"host"::tag`, as Grafana writes it
                if self.peek().kind != "IDENT":
                    raise self.error("invalid GROUP BY clause, expected type")
                self.next()
            return A.TagDimension(tok.text)
        raise self.error("invalid GROUP BY clause, expected wildcard, TIME, identifier or regular expression")

    def time_dimension(self) -> A.TimeDimension:
        interval = self.duration_arg("invalid TIME call, expected a duration for the interval")
        offset, offset_now = 0, False
        if self.op(","):
            tok = self.peek()
            if tok.is_keyword("NOW"):
                self.next()
                self.expect_op("(", "invalid TIME call, expected (")
                self.expect_op(")", "invalid TIME call, expected )")
                offset_now = True
            else:
                offset = self.duration_arg("invalid TIME call, expected a duration for the offset", signed=True)
        self.expect_op(")", "invalid TIME call, expected ')'")
        if interval <= 0:
            raise ParseError("invalid TIME call, the interval must be positive", self.pos)
        return A.TimeDimension(interval, offset, offset_now)

    def duration_arg(self, message: str, signed: bool = False) -> int:
        sign = 1
        if signed and self.peek().is_op("-"):
            self.next()
            sign = -1
        tok = self.peek()
        if tok.kind != "DURATION":
            raise self.error(message)
        self.next()
        return sign * int(tok.value)  # type: ignore[call-overload]

    def fill(self) -> A.Fill:
        self.next()  # FILL
        self.expect_op("(", "invalid FILL clause, expected (")
        tok = self.peek()
        message = "invalid FILL option, expected NULL, NONE, PREVIOUS, LINEAR, or a number"
        sign = 1
        if tok.is_op("-"):
            self.next()
            sign, tok = -1, self.peek()
        if tok.kind == "IDENT" and sign == 1 and tok.text.lower() in ("null", "none", "previous", "linear"):
            self.next()
            result = A.Fill(tok.text.lower())
        elif tok.kind in ("INTEGER", "NUMBER"):
            self.next()
            result = A.Fill("value", sign * tok.value)  # type: ignore[operator]
        else:
            raise self.error(message)
        self.expect_op(")", "invalid FILL clause, expected )")
        return result

    def order_by(self) -> bool:
        """True for descending time order."""
        tok = self.peek()
        if tok.is_keyword("ASC", "DESC"):
            self.next()
            return tok.text.upper() == "DESC"
        if tok.kind in ("IDENT", "QIDENT") and tok.text.lower() == "time":
            self.next()
            nxt = self.peek()
            if nxt.is_keyword("ASC", "DESC"):
                self.next()
                return nxt.text.upper() == "DESC"
            return False
        raise self.error("invalid ORDER BY, expected TIME column")

    # --- expressions ----------------------------------------------------------------------------------------

    def expr(self, min_prec: int = 1) -> A.Expr:
        lhs = self.unary()
        while True:
            tok = self.peek()
            op = tok.text.upper() if tok.is_keyword("AND", "OR") else tok.text if tok.kind == "OP" else None
            prec = _PRECEDENCE.get(op or "")
            if op is None or prec is None or prec < min_prec:
                return lhs
            self.next()
            if op in ("=~", "!~"):
                regex = self._scan_regex()
                rhs: A.Expr = regex if regex is not None else self.expr(prec + 1)
            else:
                rhs = self.expr(prec + 1)
            lhs = A.Binary(op, lhs, rhs)

    def unary(self) -> A.Expr:
        tok = self.peek()
        if tok.is_op("-", "+"):
            self.next()
            operand = self.unary()
            if tok.text == "+":
                return operand
            if isinstance(operand, A.IntegerLit):
                return A.IntegerLit(-operand.value)
            if isinstance(operand, A.NumberLit):
                return A.NumberLit(-operand.value)
            if isinstance(operand, A.DurationLit):
                return A.DurationLit(-operand.ns, "-" + operand.text)
            return A.Binary("*", A.IntegerLit(-1), operand)
        return self.primary()

    def primary(self) -> A.Expr:
        regex = self._scan_regex()
        if regex is not None:
            return regex
        tok = self.peek()
        if tok.is_op("("):
            self.next()
            inner = self.expr()
            self.expect_op(")", "invalid expression, expected )")
            return A.Paren(inner)
        if tok.is_op("*"):
            self.next()
            return A.Wildcard(self.type_cast(allow=("field", "tag")))
        if tok.kind == "STRING":
            self.next()
            return A.StringLit(tok.text)
        if tok.kind == "INTEGER":
            self.next()
            return A.IntegerLit(int(tok.value))  # type: ignore[call-overload]
        if tok.kind == "NUMBER":
            self.next()
            return A.NumberLit(float(tok.value))  # type: ignore[arg-type]
        if tok.kind == "DURATION":
            self.next()
            return A.DurationLit(int(tok.value), tok.text)  # type: ignore[call-overload]
        if tok.kind == "PARAM":
            self.next()
            return A.BoundParam(tok.text)
        if tok.kind == "QIDENT":
            self.next()
            return A.VarRef(tok.text, self.type_cast())
        if tok.kind == "IDENT":
            upper = tok.text.upper()
            if upper in ("TRUE", "FALSE"):
                self.next()
                return A.BoolLit(upper == "TRUE")
            if upper == "DISTINCT":
                self.next()
                if self.op("("):
                    arg = self.expr()
                    self.expect_op(")", "invalid DISTINCT expression, expected )")
                else:
                    arg = A.VarRef(self.identifier("invalid DISTINCT expression, expected identifier"))
                return A.Call("distinct", (arg,))
            if upper in KEYWORDS:
                raise self.error(f"invalid expression, unexpected keyword {tok.text}")
            self.next()
            if self.peek().is_op("("):
                self.next()
                args: list[A.Expr] = []
                if not self.peek().is_op(")"):
                    args.append(self.expr())
                    while self.op(","):
                        args.append(self.expr())
                self.expect_op(")", f"invalid function call '{tok.text}', expected )")
                return A.Call(tok.text.lower(), tuple(args))
            return A.VarRef(tok.text, self.type_cast())
        if tok.kind == "EOF":
            raise self.error("invalid expression, unexpected end of statement")
        raise self.error(f"invalid expression, unexpected '{tok.text}'")

    _TYPES = ("float", "integer", "unsigned", "string", "boolean", "field", "tag")

    def type_cast(self, allow: tuple[str, ...] = _TYPES) -> str | None:
        if not self.op("::"):
            return None
        tok = self.peek()
        if tok.kind == "IDENT" and tok.text.lower() in allow:
            self.next()
            return tok.text.lower()
        if allow == ("field", "tag"):
            raise self.error("invalid wildcard type specifier, expected TAG or FIELD")
        raise self.error("invalid data type for tag or field reference, expected float, integer, unsigned, "
                         "string, boolean, field, tag")

    # --- SHOW --------------------------------------------------------------------------------------------

    def show(self) -> A.Statement:
        self.next()  # SHOW
        if self.keyword("DATABASES"):
            return A.ShowDatabases()
        if self.keyword("RETENTION"):
            self.expect_keyword("POLICIES", "invalid SHOW RETENTION POLICIES statement, expected POLICIES")
            return A.ShowRetentionPolicies(self.on_clause())
        if self.keyword("MEASUREMENTS"):
            return self.show_measurements()
        if self.keyword("FIELD"):
            self.expect_keyword("KEYS", "invalid SHOW FIELD KEYS statement, expected KEYS")
            database = self.on_clause()
            sources = self.show_from()
            limit, offset = self.limit_offset()
            return A.ShowFieldKeys(database, sources, limit, offset)
        if self.keyword("TAG"):
            if self.keyword("KEYS"):
                database = self.on_clause()
                sources = self.show_from()
                condition = self.expr() if self.keyword("WHERE") else None
                limit, offset = self.limit_offset()
                return A.ShowTagKeys(database, sources, condition, limit, offset)
            if self.keyword("VALUES"):
                return self.show_tag_values()
            raise self.error("invalid SHOW TAG statement, expected KEYS or VALUES")
        raise self.error(INVALID_SHOW)

    def on_clause(self) -> str | None:
        if self.keyword("ON"):
            return self.identifier("invalid ON clause, expected identifier")
        return None

    def show_from(self) -> tuple[A.Measurement, ...]:
        if not self.keyword("FROM"):
            return ()
        sources = [self.measurement()]
        while self.op(","):
            sources.append(self.measurement())
        return tuple(sources)

    def limit_offset(self) -> tuple[int, int]:
        limit = self.unsigned("invalid LIMIT clause, expected unsigned integer") if self.keyword("LIMIT") else 0
        offset = self.unsigned("invalid OFFSET clause, expected unsigned integer") if self.keyword("OFFSET") else 0
        return limit, offset

    def show_measurements(self) -> A.ShowMeasurements:
        database = self.on_clause()
        name, name_op = None, "="
        if self.keyword("WITH"):
            self.expect_keyword("MEASUREMENT", "invalid WITH clause, expected MEASUREMENT")
            if self.op("=~"):
                name_op = "=~"
            elif not self.op("="):
                raise self.error("expected = or =~")
            name = self.measurement()
            if (name_op == "=~") != (name.regex is not None):
                raise self.error("expected regex but got string" if name_op == "=~"
                                 else "expected string but got regex")
        condition = self.expr() if self.keyword("WHERE") else None
        limit, offset = self.limit_offset()
        return A.ShowMeasurements(database, name, name_op, condition, limit, offset)

    def show_tag_values(self) -> A.ShowTagValues:
        database = self.on_clause()
        sources = self.show_from()
        if not self.keyword("WITH"):
            raise self.error("invalid SHOW TAG VALUES statement, expected WITH KEY clause")
        self.expect_keyword("KEY", "invalid WITH KEY clause, expected KEY")
        keys: tuple[str, ...] = ()
        key_regex = None
        if self.op("="):
            op = "="
            keys = (self.identifier("invalid WITH KEY clause, expected identifier following ="),)
        elif self.op("!="):
            op = "!="
            keys = (self.identifier("invalid WITH KEY clause, expected identifier following !="),)
        elif self.peek().is_op("=~", "!~"):
            op = self.next().text
            key_regex = self._scan_regex()
            if key_regex is None:
                raise self.error(f"invalid WITH KEY clause, expected regular expression following {op}")
        elif self.keyword("IN"):
            op = "IN"
            self.expect_op("(", "invalid IN clause, expected (")
            names = [self.identifier("invalid IN clause, expected identifier")]
            while self.op(","):
                names.append(self.identifier("invalid IN clause, expected identifier"))
            self.expect_op(")", "invalid identifier list, expected ')'")
            keys = tuple(names)
        else:
            raise self.error("invalid WITH KEY clause, expected condition")
        condition = self.expr() if self.keyword("WHERE") else None
        limit, offset = self.limit_offset()
        return A.ShowTagValues(database, sources, op, keys, key_regex, condition, limit, offset)

    # --- CREATE / DROP ---------------------------------------------------------------------------------------

    def create(self) -> A.Statement:
        self.next()  # CREATE
        if not self.keyword("DATABASE"):
            raise self.error("Invalid CREATE statement, expected DATABASE following CREATE")
        name = self.identifier("invalid CREATE DATABASE statement, expected identifier")
        retention = None
        if self.keyword("WITH"):
            while not self.at_statement_end():
                if self.keyword("DURATION"):
                    tok = self.peek()
                    if tok.kind == "DURATION":
                        self.next()
                        retention = int(tok.value) or None  # type: ignore[call-overload]
                    elif tok.is_keyword("INF"):
                        self.next()
                    else:
                        raise self.error("invalid DURATION clause, expected duration")
                elif self.keyword("REPLICATION"):
                    self.unsigned("invalid REPLICATION clause, expected unsigned integer")
                elif self.keyword("SHARD"):
                    self.expect_keyword("DURATION", "invalid SHARD DURATION clause, expected \"DURATION\"")
                    if self.peek().kind != "DURATION":
                        raise self.error("invalid SHARD DURATION clause, expected duration")
                    self.next()
                elif self.keyword("NAME"):
                    self.identifier("invalid NAME clause, expected identifier")
                else:
                    raise self.error("invalid CREATE DATABASE statement, expected DURATION, REPLICATION, "
                                     "SHARD DURATION or NAME")
        return A.CreateDatabase(name, retention)

    def drop(self) -> A.Statement:
        self.next()  # DROP
        if self.keyword("DATABASE"):
            return A.DropDatabase(self.identifier("invalid DROP DATABASE statement, expected identifier"))
        if self.keyword("MEASUREMENT"):
            self.identifier("invalid DROP MEASUREMENT statement, expected identifier")
            return A.NotImplementedStatement("DROP MEASUREMENT")
        raise self.error("invalid DROP statement, expected DATABASE or MEASUREMENT")
