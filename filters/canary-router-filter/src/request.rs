//! The request as the filter reads it from the host: the header map read once, route name and
//! source address read only if the decision asks for them.

use std::cell::OnceCell;

use canary_router::RequestView;

use crate::host::{HeaderPairs, Headers, MapType, Properties};

/// The request as the core sees it ([`RequestView`]).
pub struct HostRequest<'h, H: Headers> {
    host: &'h H,
    headers: H::Map,
    /// Where each pair lies in `headers`, found once (see [`HeaderPairs::index`]).
    index: Vec<<H::Map as HeaderPairs>::At>,
    route_name: OnceCell<Option<String>>,
    source_address: OnceCell<Option<String>>,
}

impl<'h, H: Headers + Properties> HostRequest<'h, H> {
    /// Reads the request headers (one host call).
    pub fn read(host: &'h H) -> HostRequest<'h, H> {
        let headers = host.header_map(MapType::RequestHeaders);
        let index = headers.index();
        HostRequest {
            host,
            headers,
            index,
            route_name: OnceCell::new(),
            source_address: OnceCell::new(),
        }
    }
}

impl<H: Headers + Properties> RequestView for HostRequest<'_, H> {
    fn header_values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> {
        let name = name.as_bytes();
        self.index
            .iter()
            .filter(move |at| {
                self.headers.name_len(at) == name.len() && self.headers.name(at) == name
            })
            // A value that is not UTF-8 is treated as absent.
            .filter_map(|at| std::str::from_utf8(self.headers.value(at)).ok())
    }

    fn route_name(&self) -> Option<&str> {
        self.route_name
            .get_or_init(|| {
                self.host
                    .property_string(b"xds\0route_name")
                    .filter(|s| !s.is_empty())
            })
            .as_deref()
    }

    fn source_address(&self) -> Option<&str> {
        self.source_address
            .get_or_init(|| self.host.property_string(b"source\0address"))
            .as_deref()
    }
}
