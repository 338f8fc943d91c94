//! Configuration errors that name the JSON path of the offending field.

use std::fmt;

/// One problem in a configuration, located by its JSON path (`policies[0].variants[1].weight`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in one configuration. Never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    pub fn single(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigErrors(vec![ConfigError {
            path: path.into(),
            message: message.into(),
        }])
    }

    pub fn errors(&self) -> &[ConfigError] {
        &self.0
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Collects errors while walking a configuration, tracking the current JSON path.
#[derive(Default)]
pub struct Errors {
    list: Vec<ConfigError>,
}

impl Errors {
    /// Records a problem at `path` (`""`, the root, is shown as `(config)`).
    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        let mut path = path.into();
        if path.is_empty() {
            path.push_str("(config)");
        }
        self.list.push(ConfigError {
            path,
            message: message.into(),
        });
    }

    pub(crate) fn into_vec(self) -> Vec<ConfigError> {
        self.list
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// The collected errors as an `Err`; only call when some were pushed.
    pub(crate) fn finish_err<T>(self) -> Result<T, ConfigErrors> {
        Err(ConfigErrors(self.list))
    }

    pub(crate) fn finish<T>(self, value: T) -> Result<T, ConfigErrors> {
        if self.list.is_empty() {
            Ok(value)
        } else {
            Err(ConfigErrors(self.list))
        }
    }
}
