//! A small hand-written argument parser: `--name VALUE`, `--name=VALUE`, flags, positional
//! arguments, and `--` to end the options.

use super::Usage;

/// An option a command accepts.
#[derive(Debug, Clone, Copy)]
pub struct Opt {
    pub name: &'static str,
    /// Takes a value (`--seed 7`); otherwise a flag (`--json`).
    pub value: bool,
    /// May be given several times (`--header a=1 --header b=2`).
    pub repeat: bool,
}

impl Opt {
    pub const fn value(name: &'static str) -> Opt {
        Opt {
            name,
            value: true,
            repeat: false,
        }
    }

    pub const fn repeated(name: &'static str) -> Opt {
        Opt {
            name,
            value: true,
            repeat: true,
        }
    }

    pub const fn flag(name: &'static str) -> Opt {
        Opt {
            name,
            value: false,
            repeat: false,
        }
    }
}

/// The arguments of one command, checked against its options.
#[derive(Debug, Default)]
pub struct Args {
    pub positional: Vec<String>,
    /// `(option name, value)` in command line order; flags have an empty value.
    given: Vec<(&'static str, String)>,
    pub help: bool,
}

impl Args {
    /// Parses `args` (after the command name). `-h`/`--help` anywhere sets `help`.
    pub fn parse(args: &[String], opts: &[Opt]) -> Result<Args, Usage> {
        let mut out = Args::default();
        let mut iter = args.iter();
        while let Some(arg) = iter.next() {
            if arg == "--" {
                out.positional.extend(iter.by_ref().cloned());
                break;
            }
            if arg == "-h" || arg == "--help" {
                out.help = true;
                continue;
            }
            if !arg.starts_with('-') || arg == "-" {
                out.positional.push(arg.clone());
                continue;
            }
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (arg.as_str(), None),
            };
            let Some(opt) = opts.iter().find(|o| o.name == name) else {
                return Err(Usage(format!("unknown option {name}")));
            };
            if !opt.repeat && out.given.iter().any(|(n, _)| *n == opt.name) {
                return Err(Usage(format!("{name} given twice")));
            }
            let value = match (opt.value, inline) {
                (true, Some(v)) => v.to_string(),
                (true, None) => match iter.next() {
                    Some(v) => v.clone(),
                    None => return Err(Usage(format!("{name} needs a value"))),
                },
                (false, Some(_)) => return Err(Usage(format!("{name} takes no value"))),
                (false, None) => String::new(),
            };
            out.given.push((opt.name, value));
        }
        Ok(out)
    }

    /// The value of a single-valued option.
    pub fn value<'a>(&'a self, name: &str) -> Option<&'a str> {
        self.given
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a repeatable option, in order.
    pub fn values<'a: 'n, 'n>(&'a self, name: &'n str) -> impl Iterator<Item = &'a str> + 'n {
        self.given
            .iter()
            .filter(move |(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn flag(&self, name: &str) -> bool {
        self.value(name).is_some()
    }

    /// A `KEY=VALUE` option's values as pairs; the key must not be empty.
    pub fn pairs(&self, name: &str) -> Result<Vec<(String, String)>, Usage> {
        self.values(name)
            .map(|v| match v.split_once('=') {
                Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
                _ => Err(Usage(format!("{name} {v:?}: expected KEY=VALUE"))),
            })
            .collect()
    }

    /// A numeric option's value, if given.
    pub fn number<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, Usage> {
        self.value(name)
            .map(|v| {
                v.parse()
                    .map_err(|_| Usage(format!("{name} {v:?}: expected a whole number")))
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const OPTS: &[Opt] = &[
        Opt::value("--seed"),
        Opt::repeated("--header"),
        Opt::flag("--json"),
    ];

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn values_flags_and_positionals() {
        let a = Args::parse(
            &strings(&[
                "f.yaml", "--seed=3", "--header", "a=1", "--json", "--header", "b=2=3",
            ]),
            OPTS,
        )
        .unwrap();
        assert_eq!(a.positional, ["f.yaml"]);
        assert_eq!(a.number::<u64>("--seed").unwrap(), Some(3));
        assert!(a.flag("--json"));
        assert_eq!(
            a.pairs("--header").unwrap(),
            [("a".into(), "1".into()), ("b".into(), "2=3".into())]
        );
    }

    #[test]
    fn usage_errors() {
        for bad in [
            &["--nope"][..],
            &["--seed"],
            &["--json=1"],
            &["--seed", "1", "--seed", "2"],
        ] {
            assert!(Args::parse(&strings(bad), OPTS).is_err(), "{bad:?}");
        }
        let a = Args::parse(&strings(&["--", "--json"]), OPTS).unwrap();
        assert_eq!(a.positional, ["--json"]);
        assert!(!a.flag("--json"));
    }
}
