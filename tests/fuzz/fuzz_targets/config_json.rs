//! Structured configurations: arbitrary documents shaped like plugin configurations (policies
//! with variants and weights, sticky keys and cookies, rules with every operator, ramps,
//! guards with their limits, trip handling and receivers), serialized to JSON and compiled, for
//! a VM with or without environment variables. A configuration that compiles holds the split
//! invariants (weights sum to 10 000 in every split), decides requests in range, and its guards
//! write valid JSON bodies for their receivers.
#![no_main]

use arbitrary::Arbitrary;
use canary_router::guard::{Event, Format, OnTrip, Pending, Window};
use canary_router::notify::{body, Subject};
use canary_router::{Config, Environment, SplitMix64};
use canary_router_fuzz::{check_config, check_decision, HeaderName, Name, Request};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};

#[derive(Arbitrary, Debug)]
struct Doc {
    variant_header: Option<HeaderName>,
    expose_variant: Option<bool>,
    route_metadata: Option<bool>,
    filter_state: Option<bool>,
    policies: Vec<Pol>,
    extra: Option<(String, Scalar)>,
    requests: Vec<Request>,
    seed: u64,
    now: i64,
    tripped: Vec<bool>,
    /// The Wasm VM's environment variables (`None`: the command, references checked only).
    vars: Option<Vec<(VarName, String)>>,
}

/// An environment variable's name: mostly one the receivers reference.
#[derive(Arbitrary, Debug)]
enum VarName {
    Pool(u8),
    Raw(String),
}

const VARS: &[&str] = &["TOKEN", "HOOK", "GITHUB_TOKEN", "_x1"];

impl VarName {
    fn get(&self) -> String {
        match self {
            VarName::Pool(i) => VARS[usize::from(*i) % VARS.len()].to_string(),
            VarName::Raw(s) => s.clone(),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Pol {
    name: Name,
    hosts: Option<Vec<String>>,
    path_prefix: Option<String>,
    routes: Option<Vec<String>>,
    salt: Option<String>,
    trust_incoming: Option<bool>,
    variants: Vec<(Name, Weight)>,
    /// Make the weights sum to 100 % by adjusting the last one.
    balance: bool,
    sticky: Option<Sticky>,
    rules: Vec<Rule>,
    ramp: Option<Ramp>,
    guard: Option<Guard>,
}

#[derive(Arbitrary, Debug)]
enum Weight {
    Percent(u8),
    Centi(u16),
    Text(String),
    Float(f32),
    Other(Scalar),
}

#[derive(Arbitrary, Debug)]
enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    Str(String),
    List(Vec<u8>),
}

impl Scalar {
    fn json(&self) -> Value {
        match self {
            Scalar::Null => Value::Null,
            Scalar::Bool(b) => json!(b),
            Scalar::Int(i) => json!(i),
            Scalar::Str(s) => json!(s),
            Scalar::List(l) => json!(l),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Sticky {
    keys: Vec<Src>,
    cookie: Option<Cookie>,
}

#[derive(Arbitrary, Debug)]
enum Src {
    Header(HeaderName),
    Cookie(String),
    Query(String),
    SourceIp(bool),
    SourceLabel(String),
    Two(HeaderName, String),
}

impl Src {
    fn json(&self) -> Map<String, Value> {
        let v = match self {
            Src::Header(h) => json!({"header": h.get()}),
            Src::Cookie(c) => json!({"cookie": c}),
            Src::Query(q) => json!({"query": q}),
            Src::SourceIp(b) => json!({"source_ip": b}),
            Src::SourceLabel(l) => json!({"source_label": l}),
            Src::Two(h, c) => json!({"header": h.get(), "cookie": c}),
        };
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Cookie {
    name: String,
    max_age: Option<u32>,
    path: Option<String>,
    domain: Option<String>,
    secure: Option<bool>,
    http_only: Option<bool>,
    same_site: Option<u8>,
}

#[derive(Arbitrary, Debug)]
struct Rule {
    variant: Name,
    matches: Vec<(Src, Operator)>,
}

#[derive(Arbitrary, Debug)]
enum Operator {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Contains(String),
    Present(bool),
    Regex(String),
    None,
    Both(String, String),
}

#[derive(Arbitrary, Debug)]
struct Ramp {
    variant: Name,
    start: Time,
    form: RampForm,
}

#[derive(Arbitrary, Debug)]
enum Time {
    Fixed(u8),
    Raw(String),
    Parts(u16, u8, u8, u8, u8, u8, Option<i8>),
}

impl Time {
    fn get(&self) -> String {
        match self {
            Time::Fixed(i) => [
                "2025-01-01T00:00:00Z",
                "1970-01-01T00:00:00Z",
                "2025-06-30T12:30:00+02:00",
                "9999-12-31T23:59:59Z",
                "2024-02-29T00:00:00.5Z",
            ][usize::from(*i) % 5]
                .to_string(),
            Time::Raw(s) => s.clone(),
            Time::Parts(y, mo, d, h, mi, s, off) => {
                let off = off.map_or("Z".to_string(), |o| format!("{:+03}:00", o));
                format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{off}")
            }
        }
    }
}

#[derive(Arbitrary, Debug)]
enum RampForm {
    Steps(Vec<Weight>, Option<u32>),
    Linear(Weight, Weight, Option<u32>),
    Mixed(Vec<Weight>, Weight, Option<u64>),
}

#[derive(Arbitrary, Debug)]
struct Guard {
    variant: Name,
    baseline: Option<Name>,
    window_seconds: Option<u32>,
    min_requests: Option<u32>,
    max_failure_rate: Option<Weight>,
    max_p99_ms: Option<u32>,
    max_failure_rate_increase: Option<Weight>,
    max_p99_ratio: Option<Weight>,
    on_trip: Option<Choice>,
    hold_seconds: Option<u32>,
    max_trips: Option<u32>,
    notify: Option<Receivers>,
}

/// A string setting: mostly one of its choices.
#[derive(Arbitrary, Debug)]
enum Choice {
    Pool(u8),
    Raw(String),
    Other(Scalar),
}

impl Choice {
    fn json(&self, choices: &[&str]) -> Value {
        match self {
            Choice::Pool(i) => json!(choices[usize::from(*i) % choices.len()]),
            Choice::Raw(s) => json!(s),
            Choice::Other(s) => s.json(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Receivers {
    One(Notify),
    List(Vec<Notify>),
    Other(Scalar),
}

#[derive(Arbitrary, Debug)]
struct Notify {
    format: Option<Choice>,
    cluster: String,
    path: Text,
    authority: Option<String>,
    timeout_ms: Option<u32>,
    retries: Option<u32>,
    headers: Option<Vec<(String, Text)>>,
}

/// A path or header value: mostly with `${NAME}` references, well-formed or not.
#[derive(Arbitrary, Debug)]
enum Text {
    Raw(String),
    Parts(Vec<Part>),
}

#[derive(Arbitrary, Debug)]
enum Part {
    Lit(String),
    Var(VarName),
    Open,
    Close,
}

impl Text {
    fn get(&self) -> String {
        match self {
            Text::Raw(s) => s.clone(),
            Text::Parts(parts) => {
                let mut out = String::from("/");
                for p in parts.iter().take(8) {
                    match p {
                        Part::Lit(s) => out.push_str(s),
                        Part::Var(v) => {
                            out.push_str("${");
                            out.push_str(&v.get());
                            out.push('}');
                        }
                        Part::Open => out.push_str("${"),
                        Part::Close => out.push('}'),
                    }
                }
                out
            }
        }
    }
}

impl Notify {
    fn json(&self) -> Value {
        let mut nm = Map::new();
        if let Some(f) = &self.format {
            nm.insert("format".into(), f.json(&Format::NAMES));
        }
        nm.insert("cluster".into(), json!(self.cluster));
        nm.insert("path".into(), json!(self.path.get()));
        if let Some(a) = &self.authority {
            nm.insert("authority".into(), json!(a));
        }
        if let Some(t) = self.timeout_ms {
            nm.insert("timeout_ms".into(), json!(t));
        }
        if let Some(r) = self.retries {
            nm.insert("retries".into(), json!(r % 16));
        }
        if let Some(h) = &self.headers {
            let hm: Map<String, Value> = h
                .iter()
                .take(8)
                .map(|(k, v)| (k.clone(), json!(v.get())))
                .collect();
            nm.insert("headers".into(), Value::Object(hm));
        }
        Value::Object(nm)
    }
}

/// A fraction written with up to four decimals (mostly valid), or anything.
fn fraction(w: &Weight) -> Value {
    match w.bp() {
        // 0.0000 .. 1.0000 mostly.
        Some(bp) => serde_json::from_str(&format!("0.{:04}", bp % 10_000)).unwrap_or(Value::Null),
        None => w.json(),
    }
}

impl Weight {
    fn json(&self) -> Value {
        match self {
            Weight::Percent(p) => json!(p),
            Weight::Centi(c) => {
                let text = format!("{}.{:02}", c / 100, c % 100);
                serde_json::from_str(&text).unwrap_or(Value::Null)
            }
            Weight::Text(s) => json!(s),
            Weight::Float(f) if f.is_finite() => json!(f),
            Weight::Float(_) => Value::Null,
            Weight::Other(s) => s.json(),
        }
    }

    /// Basis points, when a whole or two-decimal number.
    fn bp(&self) -> Option<u32> {
        match self {
            Weight::Percent(p) => Some(u32::from(*p) * 100),
            Weight::Centi(c) => Some(u32::from(*c)),
            _ => None,
        }
    }
}

fn policy(p: &Pol) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(p.name.get()));
    if let Some(h) = &p.hosts {
        m.insert("hosts".into(), json!(h));
    }
    if let Some(x) = &p.path_prefix {
        m.insert("path_prefix".into(), json!(x));
    }
    if let Some(r) = &p.routes {
        m.insert("routes".into(), json!(r));
    }
    if let Some(s) = &p.salt {
        m.insert("salt".into(), json!(s));
    }
    if let Some(t) = p.trust_incoming {
        m.insert("trust_incoming".into(), json!(t));
    }
    let mut variants: Vec<Value> = p
        .variants
        .iter()
        .take(12)
        .map(|(n, w)| json!({"name": n.get(), "weight": w.json()}))
        .collect();
    if p.balance && !variants.is_empty() {
        let n = variants.len();
        let others: u32 = p
            .variants
            .iter()
            .take(n - 1)
            .filter_map(|(_, w)| w.bp())
            .sum();
        let last = 10_000u32.saturating_sub(others);
        let text = format!("{}.{:02}", last / 100, last % 100);
        if let (Some(v), Ok(w)) = (variants.last_mut(), serde_json::from_str::<Value>(&text)) {
            v["weight"] = w;
        }
    }
    m.insert("variants".into(), Value::Array(variants));
    if let Some(s) = &p.sticky {
        let mut st = Map::new();
        st.insert(
            "keys".into(),
            Value::Array(
                s.keys
                    .iter()
                    .take(6)
                    .map(|k| Value::Object(k.json()))
                    .collect(),
            ),
        );
        if let Some(c) = &s.cookie {
            let mut cm = Map::new();
            cm.insert("name".into(), json!(c.name));
            if let Some(a) = c.max_age {
                cm.insert("max_age".into(), json!(a));
            }
            if let Some(a) = &c.path {
                cm.insert("path".into(), json!(a));
            }
            if let Some(a) = &c.domain {
                cm.insert("domain".into(), json!(a));
            }
            if let Some(a) = c.secure {
                cm.insert("secure".into(), json!(a));
            }
            if let Some(a) = c.http_only {
                cm.insert("http_only".into(), json!(a));
            }
            if let Some(a) = c.same_site {
                let s = ["Strict", "Lax", "None", "strict", "bogus"][usize::from(a) % 5];
                cm.insert("same_site".into(), json!(s));
            }
            st.insert("cookie".into(), Value::Object(cm));
        }
        m.insert("sticky".into(), Value::Object(st));
    }
    if !p.rules.is_empty() {
        let rules: Vec<Value> = p
            .rules
            .iter()
            .take(8)
            .map(|r| {
                let matches: Vec<Value> = r
                    .matches
                    .iter()
                    .take(6)
                    .map(|(s, op)| {
                        let mut c = s.json();
                        match op {
                            Operator::Exact(v) => c.insert("exact".into(), json!(v)),
                            Operator::Prefix(v) => c.insert("prefix".into(), json!(v)),
                            Operator::Suffix(v) => c.insert("suffix".into(), json!(v)),
                            Operator::Contains(v) => c.insert("contains".into(), json!(v)),
                            Operator::Present(v) => c.insert("present".into(), json!(v)),
                            Operator::Regex(v) => c.insert("regex".into(), json!(v)),
                            Operator::None => None,
                            Operator::Both(a, b) => {
                                c.insert("exact".into(), json!(a));
                                c.insert("regex".into(), json!(b))
                            }
                        };
                        Value::Object(c)
                    })
                    .collect();
                json!({"variant": r.variant.get(), "match": matches})
            })
            .collect();
        m.insert("rules".into(), Value::Array(rules));
    }
    if let Some(r) = &p.ramp {
        let mut rm = Map::new();
        rm.insert("variant".into(), json!(r.variant.get()));
        rm.insert("start".into(), json!(r.start.get()));
        match &r.form {
            RampForm::Steps(steps, secs) => {
                let s: Vec<Value> = steps.iter().take(16).map(Weight::json).collect();
                rm.insert("steps".into(), Value::Array(s));
                if let Some(secs) = secs {
                    rm.insert("step_seconds".into(), json!(secs));
                }
            }
            RampForm::Linear(from, to, secs) => {
                rm.insert("from".into(), from.json());
                rm.insert("to".into(), to.json());
                if let Some(secs) = secs {
                    rm.insert("duration_seconds".into(), json!(secs));
                }
            }
            RampForm::Mixed(steps, to, secs) => {
                let s: Vec<Value> = steps.iter().take(16).map(Weight::json).collect();
                rm.insert("steps".into(), Value::Array(s));
                rm.insert("to".into(), to.json());
                if let Some(secs) = secs {
                    rm.insert("duration_seconds".into(), json!(secs));
                    rm.insert("step_seconds".into(), json!(secs));
                }
            }
        }
        m.insert("ramp".into(), Value::Object(rm));
    }
    if let Some(g) = &p.guard {
        let mut gm = Map::new();
        gm.insert("variant".into(), json!(g.variant.get()));
        if let Some(b) = &g.baseline {
            gm.insert("baseline".into(), json!(b.get()));
        }
        let nums = [
            ("window_seconds", g.window_seconds),
            ("min_requests", g.min_requests),
            ("max_p99_ms", g.max_p99_ms),
            ("hold_seconds", g.hold_seconds),
            ("max_trips", g.max_trips.map(|n| n % 8)),
        ];
        for (k, v) in nums {
            if let Some(v) = v {
                gm.insert(k.into(), json!(v));
            }
        }
        if let Some(r) = &g.max_failure_rate {
            gm.insert("max_failure_rate".into(), fraction(r));
        }
        if let Some(r) = &g.max_failure_rate_increase {
            gm.insert("max_failure_rate_increase".into(), fraction(r));
        }
        if let Some(r) = &g.max_p99_ratio {
            // A factor: 1.00 .. 3.55 mostly (whole percents, two decimals).
            let v = match r.bp() {
                Some(bp) => serde_json::from_str(&format!("{}.{:02}", 1 + bp / 100 % 3, bp % 100))
                    .unwrap_or(Value::Null),
                None => r.json(),
            };
            gm.insert("max_p99_ratio".into(), v);
        }
        if let Some(c) = &g.on_trip {
            gm.insert("on_trip".into(), c.json(&["abort", "rearm"]));
        }
        if let Some(n) = &g.notify {
            let v = match n {
                Receivers::One(n) => n.json(),
                Receivers::List(list) => {
                    Value::Array(list.iter().take(6).map(Notify::json).collect())
                }
                Receivers::Other(s) => s.json(),
            };
            gm.insert("notify".into(), v);
        }
        m.insert("guard".into(), Value::Object(gm));
    }
    Value::Object(m)
}

fuzz_target!(|doc: Doc| {
    let mut m = Map::new();
    if let Some(h) = &doc.variant_header {
        m.insert("variant_header".into(), json!(h.get()));
    }
    for (k, v) in [
        ("expose_variant", doc.expose_variant),
        ("route_metadata", doc.route_metadata),
        ("filter_state", doc.filter_state),
    ] {
        if let Some(v) = v {
            m.insert(k.into(), json!(v));
        }
    }
    let policies: Vec<Value> = doc.policies.iter().take(8).map(policy).collect();
    m.insert("policies".into(), Value::Array(policies));
    if let Some((k, v)) = &doc.extra {
        m.insert(k.clone(), v.json());
    }
    let text = Value::Object(m).to_string();
    let env = Environment {
        vars: doc.vars.as_ref().map(|vars| {
            vars.iter()
                .take(8)
                .map(|(k, v)| (k.get(), v.clone()))
                .collect()
        }),
        ..Environment::default()
    };
    let Ok(config) = Config::from_json_in(text.as_bytes(), &env) else {
        return;
    };
    check_config(&config, doc.now, &doc.tripped);
    check_guards(&config, &env, doc.now);
    let live = config.effective_splits(doc.now, &doc.tripped);
    for r in doc.requests.iter().take(4) {
        let req = r.view();
        let a = config.decide_live(&req, None, &live, &mut SplitMix64::new(doc.seed));
        let b = config.decide_live(&req, None, &live, &mut SplitMix64::new(doc.seed));
        assert_eq!(a, b);
        if let Some(d) = a {
            check_decision(&config, &d);
        }
    }
});

/// A compiled guard's settings hold together, its receivers' references were replaced (or
/// kept as written, for the command), and a trip of its variant writes a valid JSON body for
/// every format.
fn check_guards(config: &Config, env: &Environment, now: i64) {
    for p in config.policies() {
        let Some(g) = p.guard() else {
            continue;
        };
        assert_ne!(g.variant(), g.baseline());
        assert!(g.variant() < p.variants().len() && g.baseline() < p.variants().len());
        assert!(g.max_trips() >= 1 && g.hold_seconds() >= 1);
        for r in g.receivers() {
            assert!(r.retries <= 10 && r.timeout_ms >= 1);
            assert!(!r.cluster.is_empty());
            if env.vars.is_none() {
                assert!(r.path.starts_with('/'));
            }
        }
        // Every request of both variants fails: the guard trips (a failure-rate limit of 1 or
        // an increase margin of 1 never trips; a p99 limit needs slow responses).
        let mut pending = Pending::default();
        for i in 0..g.min_requests().min(5_000) {
            for v in [g.variant(), g.baseline()] {
                g.record(
                    &mut pending,
                    v,
                    v == g.variant(),
                    Some(u64::from(i % 70) * 1000),
                );
            }
        }
        let mut w = Window::new(g);
        let now_ms = now.saturating_mul(1000);
        let Some(event) = w.advance(g, now_ms, &pending) else {
            continue;
        };
        if let Event::Tripped { until_ms, trip, .. } = &event {
            assert_eq!(*trip, 1);
            assert_eq!(
                until_ms.is_none(),
                g.on_trip() == OnTrip::Abort || g.max_trips() == 1
            );
        }
        let who = Subject {
            policy: p.name(),
            variant: p.variants()[g.variant()].name(),
            baseline: p.variants()[g.baseline()].name(),
            node: "node",
            fingerprint: config.document_fingerprint(),
        };
        for event in [&event, &Event::Rearmed] {
            for r in g.receivers() {
                let b = body(r.format, g, event, &who, now);
                let json: Value =
                    serde_json::from_str(&b).unwrap_or_else(|e| panic!("{:?}: {e}\n{b}", r.format));
                assert!(json.is_object());
            }
        }
    }
}
