//! Finding the first policy that applies to a request without scanning every policy.
//!
//! Each policy is filed under its primary selector: every exact host in one hash map, every
//! `*.suffix` wildcard in another, route-only policies by route name, and the rest in a list
//! that every request considers. Each bucket holds policy indices in ascending order, so the
//! first policy that applies is the smallest index, over all candidate buckets, whose remaining
//! selectors (path prefix, routes) match.

use hashbrown::HashMap;

/// Name → index into `PolicyIndex::lists`. One map type for every name lookup in the core and
/// the filter keeps a single copy of the hash table code in the Wasm module.
pub type NameMap = HashMap<String, u32>;

#[derive(Debug, Default)]
pub(crate) struct PolicyIndex {
    exact: NameMap,
    /// Keyed by the suffix with its leading dot: `*.example.com` → `.example.com`.
    wildcard: NameMap,
    /// Policies without hosts but with routes, by route name.
    routes: NameMap,
    /// The policy lists the maps point to.
    lists: Vec<Vec<u32>>,
    /// Policies that apply to any host (no `hosts`, or `*`) and have no route-only filing.
    any: Vec<u32>,
    uses_routes: bool,
}

impl PolicyIndex {
    /// The index of policies given by their selectors `(hosts, routes)`, in order.
    pub(crate) fn build<'a>(
        policies: impl Iterator<Item = (Option<&'a [String]>, Option<&'a [String]>)>,
    ) -> PolicyIndex {
        let mut ix = PolicyIndex::default();
        for (i, (hosts, routes)) in policies.enumerate() {
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            if routes.is_some() {
                ix.uses_routes = true;
            }
            match hosts {
                Some(hosts) if !hosts.iter().any(|h| h == "*") => {
                    for h in hosts {
                        let (map, key) = match h.strip_prefix('*') {
                            Some(suffix) => (&mut ix.wildcard, suffix),
                            None => (&mut ix.exact, h.as_str()),
                        };
                        file(map, &mut ix.lists, key, i);
                    }
                }
                _ => match routes {
                    Some(routes) => {
                        for r in routes {
                            file(&mut ix.routes, &mut ix.lists, r, i);
                        }
                    }
                    None => ix.any.push(i),
                },
            }
        }
        ix
    }

    pub(crate) fn uses_routes(&self) -> bool {
        self.uses_routes
    }

    /// The first policy (lowest index) among those filed for `host` or `route` that `applies`.
    /// `host` is lowercase and without port; `route` is only called when route-only policies
    /// exist.
    pub(crate) fn find<'r>(
        &self,
        host: &str,
        route: impl FnOnce() -> Option<&'r str>,
        mut applies: impl FnMut(u32) -> bool,
    ) -> Option<usize> {
        let mut best = u32::MAX;
        let mut consider = |list: &[u32]| {
            for &i in list {
                if i >= best {
                    break;
                }
                if applies(i) {
                    best = i;
                    break;
                }
            }
        };
        let list = |map: &NameMap, key: &str| {
            map.get(key)
                .and_then(|i| self.lists.get(*i as usize))
                .map(Vec::as_slice)
        };
        if let Some(l) = list(&self.exact, host) {
            consider(l);
        }
        if !self.wildcard.is_empty() {
            // `*.example.com` matches `a.example.com` and `a.b.example.com`, not `example.com`.
            for (pos, _) in host.match_indices('.').filter(|(pos, _)| *pos > 0) {
                if let Some(l) = host.get(pos..).and_then(|s| list(&self.wildcard, s)) {
                    consider(l);
                }
            }
        }
        if !self.routes.is_empty() {
            if let Some(l) = route().and_then(|r| list(&self.routes, r)) {
                consider(l);
            }
        }
        consider(&self.any);
        (best != u32::MAX).then_some(best as usize)
    }
}

/// Files policy `i` under `key`, once (a policy may list the same host or route twice).
fn file(map: &mut NameMap, lists: &mut Vec<Vec<u32>>, key: &str, i: u32) {
    let next = u32::try_from(lists.len()).unwrap_or(u32::MAX);
    let at = *map.entry_ref(key).or_insert(next);
    if at == next {
        lists.push(Vec::new());
    }
    if let Some(list) = lists.get_mut(at as usize) {
        if list.last() != Some(&i) {
            list.push(i);
        }
    }
}
