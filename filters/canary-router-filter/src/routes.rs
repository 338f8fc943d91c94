//! The route metadata cache (`"route_metadata": true`): each route's
//! `filter_metadata["canary-router"]`, read and compiled on the route's first request, kept by
//! route name, and read again after the root context marks the cache stale (routes change by
//! RDS).

use std::cell::RefCell;
use std::rc::Rc;

use canary_router::index::NameMap;
use canary_router::overrides::ROUTE_METADATA_NAMESPACE;
use canary_router::stats::ErrorSource;
use canary_router::{pb, Config, RouteOverride};

use crate::host::{Log, LogLevel, Properties, Stats};
use crate::metrics;

/// What is known of one route's `filter_metadata["canary-router"]`.
struct RouteEntry {
    /// The compiled override; `None`: nothing to apply (absent or invalid).
    compiled: Option<Rc<RouteOverride>>,
    /// False once the cache period ended: read the metadata again.
    fresh: bool,
    /// The last problem logged, so a bad override is logged once, not at every refresh.
    logged: Option<String>,
}

/// The route overrides of one configuration, by route name.
#[derive(Default)]
pub struct Routes {
    /// Route name → index into `entries`.
    names: RefCell<NameMap>,
    entries: RefCell<Vec<RouteEntry>>,
}

impl Routes {
    /// The override of the route `name` (the one the request matched), reading the route's
    /// metadata from the host (`xds.route_metadata`) and compiling it on first use and after
    /// [`Routes::expire`].
    pub fn get(
        &self,
        host: &(impl Properties + Log + Stats),
        config: &Config,
        name: &str,
    ) -> Option<Rc<RouteOverride>> {
        let at = self.names.borrow().get(name).copied();
        if let Some(i) = at {
            if let Some(entry) = self.entries.borrow().get(i as usize).filter(|e| e.fresh) {
                return entry.compiled.clone();
            }
        }
        let path = format!("route[{name}].filter_metadata.{ROUTE_METADATA_NAMESPACE}");
        let compiled = host
            .property(b"xds\0route_metadata")
            .map(|bytes| pb::filter_metadata(&bytes, ROUTE_METADATA_NAMESPACE))
            .transpose()
            .map(Option::flatten)
            .map_err(|e| format!("{path}: cannot decode route metadata: {e}"))
            .and_then(|value| match value {
                Some(value) => config
                    .route_override(&value, &path)
                    .map_err(|errors| errors.to_string()),
                None => Ok(None),
            });
        let mut entries = self.entries.borrow_mut();
        let i = match at {
            Some(i) => i as usize,
            None => {
                let i = entries.len();
                entries.push(RouteEntry {
                    compiled: None,
                    fresh: true,
                    logged: None,
                });
                self.names
                    .borrow_mut()
                    .insert(name.to_string(), u32::try_from(i).unwrap_or(u32::MAX));
                i
            }
        };
        let entry = entries.get_mut(i)?;
        entry.fresh = true;
        entry.compiled = match compiled {
            Ok(o) => o.map(Rc::new),
            Err(e) => {
                if entry.logged.as_ref() != Some(&e) {
                    host.log(
                        LogLevel::Error,
                        &format!("invalid route metadata override, ignored: {e}"),
                    );
                    metrics::config_errors(host, ErrorSource::Route, 1);
                    entry.logged = Some(e);
                }
                None
            }
        };
        entry.compiled.clone()
    }

    /// Marks every cached route override stale (read again on the route's next request).
    pub fn expire(&self) {
        for entry in self.entries.borrow_mut().iter_mut() {
            entry.fresh = false;
        }
    }
}
