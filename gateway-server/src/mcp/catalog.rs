//! The merged catalog: every backend's tools, prompts, resources and resource
//! templates, with the namespaced names clients see and the indexes that route
//! a name or URI back to its backend.
//!
//! Each backend's lists are fetched when it connects and again when it says a
//! list changed; the merged view is rebuilt from those snapshots and swapped in
//! whole, so readers never see a half-built catalog and `tools/list` never waits
//! on an upstream.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use super::naming;

/// What one backend offers, as it sent it.
#[derive(Debug, Default, Clone)]
pub struct BackendCatalog {
    pub tools: Vec<Map<String, Value>>,
    pub prompts: Vec<Map<String, Value>>,
    pub resources: Vec<Map<String, Value>>,
    pub templates: Vec<Map<String, Value>>,
}

impl BackendCatalog {
    /// The list of one kind.
    pub fn list(&self, kind: Kind) -> &Vec<Map<String, Value>> {
        match kind {
            Kind::Tools => &self.tools,
            Kind::Prompts => &self.prompts,
            Kind::Resources => &self.resources,
            Kind::Templates => &self.templates,
        }
    }

    /// The list of one kind, to replace.
    pub fn list_mut(&mut self, kind: Kind) -> &mut Vec<Map<String, Value>> {
        match kind {
            Kind::Tools => &mut self.tools,
            Kind::Prompts => &mut self.prompts,
            Kind::Resources => &mut self.resources,
            Kind::Templates => &mut self.templates,
        }
    }
}

/// Where an exposed name leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub backend: Arc<str>,
    /// The name (or URI) the backend knows.
    pub original: String,
}

/// The four list kinds the catalog serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Tools,
    Prompts,
    Resources,
    Templates,
}

impl Kind {
    /// The key of the list in a `*/list` result.
    pub fn result_key(self) -> &'static str {
        match self {
            Self::Tools => "tools",
            Self::Prompts => "prompts",
            Self::Resources => "resources",
            Self::Templates => "resourceTemplates",
        }
    }
}

/// Scheme used for resource URIs that collide between backends.
pub const COLLISION_SCHEME: &str = "gatehouse+";

/// The merged view over every backend.
#[derive(Debug, Default)]
pub struct Catalog {
    pub tools: Vec<Value>,
    pub prompts: Vec<Value>,
    pub resources: Vec<Value>,
    pub templates: Vec<Value>,
    /// Where each item of each list comes from, aligned with the lists (for
    /// per-caller filtering): the backend and the item's own name (or URI).
    origins: [Vec<Route>; 4],
    tool_index: HashMap<String, Route>,
    prompt_index: HashMap<String, Route>,
    resource_index: HashMap<String, Route>,
    /// (backend, literal prefix of the template before its first `{`).
    template_prefixes: Vec<(Arc<str>, String)>,
}

impl Catalog {
    /// Builds the merged catalog. `backends` must come in a stable order
    /// (earlier backends keep plain names when names collide).
    pub fn build<'a>(backends: impl IntoIterator<Item = (&'a str, &'a BackendCatalog)>) -> Self {
        let mut cat = Self::default();
        for (name, bc) in backends {
            let backend: Arc<str> = Arc::from(name);
            Self::add_named(&mut cat.tools, &mut cat.origins[0], &mut cat.tool_index, &backend, &bc.tools);
            Self::add_named(&mut cat.prompts, &mut cat.origins[1], &mut cat.prompt_index, &backend, &bc.prompts);
            for r in &bc.resources {
                let Some(uri) = r.get("uri").and_then(Value::as_str) else { continue };
                let mut item = r.clone();
                let exposed = if cat.resource_index.contains_key(uri) {
                    let ns = format!("{COLLISION_SCHEME}{backend}:{uri}");
                    item.insert("uri".into(), Value::String(ns.clone()));
                    ns
                } else {
                    uri.to_owned()
                };
                let route = Route { backend: backend.clone(), original: uri.to_owned() };
                cat.origins[2].push(route.clone());
                cat.resource_index.insert(exposed, route);
                cat.resources.push(Value::Object(item));
            }
            for t in &bc.templates {
                let mut item = t.clone();
                let original = t.get("uriTemplate").and_then(Value::as_str).unwrap_or_default().to_owned();
                cat.origins[3].push(Route { backend: backend.clone(), original });
                if let Some(tpl) = t.get("uriTemplate").and_then(Value::as_str) {
                    let prefix = tpl.split('{').next().unwrap_or_default().to_owned();
                    // A template another backend already offers is exposed
                    // namespaced, so clients can reach this backend's copy.
                    if cat.template_prefixes.iter().any(|(_, p)| *p == prefix) {
                        item.insert("uriTemplate".into(), Value::String(format!("{COLLISION_SCHEME}{backend}:{tpl}")));
                    }
                    cat.template_prefixes.push((backend.clone(), prefix));
                }
                cat.templates.push(Value::Object(item));
            }
        }
        // Longest template prefix wins when routing a URI.
        cat.template_prefixes.sort_by_key(|t| std::cmp::Reverse(t.1.len()));
        cat
    }

    fn add_named(
        out: &mut Vec<Value>,
        origins: &mut Vec<Route>,
        index: &mut HashMap<String, Route>,
        backend: &Arc<str>,
        items: &[Map<String, Value>],
    ) {
        for item in items {
            let Some(name) = item.get("name").and_then(Value::as_str) else { continue };
            let exposed = naming::namespaced(backend, name, |c| index.contains_key(c));
            let mut item = item.clone();
            item.insert("name".into(), Value::String(exposed.clone()));
            let route = Route { backend: backend.clone(), original: name.to_owned() };
            origins.push(route.clone());
            index.insert(exposed, route);
            out.push(Value::Object(item));
        }
    }

    /// Each item of list `kind` with where it comes from.
    pub fn items_with_origin(&self, kind: Kind) -> impl Iterator<Item = (&Value, &Route)> {
        let i = match kind {
            Kind::Tools => 0,
            Kind::Prompts => 1,
            Kind::Resources => 2,
            Kind::Templates => 3,
        };
        self.list(kind).iter().zip(&self.origins[i])
    }

    pub fn tool(&self, exposed: &str) -> Option<&Route> {
        self.tool_index.get(exposed)
    }

    pub fn prompt(&self, exposed: &str) -> Option<&Route> {
        self.prompt_index.get(exposed)
    }

    /// Routes a resource URI: an exact listed URI, a collision-namespaced URI,
    /// or the backend whose template prefix matches longest.
    pub fn resource(&self, uri: &str) -> Option<Route> {
        if let Some(r) = self.resource_index.get(uri) {
            return Some(r.clone());
        }
        if let Some(rest) = uri.strip_prefix(COLLISION_SCHEME)
            && let Some((backend, original)) = rest.split_once(':')
        {
            if let Some((b, _)) = self.template_prefixes.iter().find(|(b, _)| &**b == backend) {
                return Some(Route { backend: b.clone(), original: original.to_owned() });
            }
            if let Some(r) = self.resource_index.values().find(|r| &*r.backend == backend) {
                return Some(Route { backend: r.backend.clone(), original: original.to_owned() });
            }
        }
        self.template_prefixes
            .iter()
            .find(|(_, prefix)| !prefix.is_empty() && uri.starts_with(prefix.as_str()))
            .map(|(b, _)| Route { backend: b.clone(), original: uri.to_owned() })
    }

    pub fn list(&self, kind: Kind) -> &[Value] {
        match kind {
            Kind::Tools => &self.tools,
            Kind::Prompts => &self.prompts,
            Kind::Resources => &self.resources,
            Kind::Templates => &self.templates,
        }
    }
}

/// Default page size of the gateway's own pagination.
pub const PAGE_SIZE: usize = 500;

/// Encodes the gateway's cursor: an opaque offset into the merged list.
pub fn encode_cursor(offset: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("gh1:{offset}"))
}

/// Decodes a cursor made by [`encode_cursor`].
pub fn decode_cursor(cursor: &str) -> Option<usize> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    text.strip_prefix("gh1:")?.parse().ok()
}

/// One page of `items` from `offset`, with the next cursor when more remain.
pub fn page<T>(items: &[T], offset: usize, size: usize) -> (&[T], Option<String>) {
    let start = offset.min(items.len());
    let end = start.saturating_add(size).min(items.len());
    let next = (end < items.len()).then(|| encode_cursor(end));
    (&items[start..end], next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn merges_and_routes() {
        let a = BackendCatalog {
            tools: vec![obj(json!({"name":"echo","inputSchema":{"type":"object"},"annotations":{"readOnlyHint":true},"x-vendor":1}))],
            resources: vec![obj(json!({"uri":"file:///a","name":"a"}))],
            templates: vec![obj(json!({"uriTemplate":"test://template/{id}/data","name":"t"}))],
            ..Default::default()
        };
        let b = BackendCatalog {
            tools: vec![obj(json!({"name":"echo"}))],
            resources: vec![obj(json!({"uri":"file:///a","name":"a2"}))],
            templates: vec![obj(json!({"uriTemplate":"test://template/{id}/data","name":"t"}))],
            ..Default::default()
        };
        let cat = Catalog::build([("a", &a), ("b", &b)]);
        assert_eq!(cat.tools[0]["name"], "a__echo");
        assert_eq!(cat.tools[0]["x-vendor"], 1, "unknown fields kept");
        assert_eq!(cat.tools[0]["annotations"]["readOnlyHint"], true);
        assert_eq!(cat.tools[1]["name"], "b__echo");
        assert_eq!(cat.tool("b__echo").unwrap().original, "echo");
        assert_eq!(&*cat.tool("a__echo").unwrap().backend, "a");
        // Resource URIs are kept; the colliding one is namespaced and still routes.
        assert_eq!(cat.resources[0]["uri"], "file:///a");
        let ns = cat.resources[1]["uri"].as_str().unwrap();
        assert_eq!(ns, "gatehouse+b:file:///a");
        let r = cat.resource(ns).unwrap();
        assert_eq!((&*r.backend, r.original.as_str()), ("b", "file:///a"));
        assert_eq!(&*cat.resource("file:///a").unwrap().backend, "a");
        // Templates route by prefix; a template offered twice is namespaced the second time.
        assert_eq!(&*cat.resource("test://template/7/data").unwrap().backend, "a");
        assert_eq!(cat.templates.len(), 2);
        assert_eq!(cat.templates[1]["uriTemplate"], "gatehouse+b:test://template/{id}/data");
        let r = cat.resource("gatehouse+b:test://template/7/data").unwrap();
        assert_eq!((&*r.backend, r.original.as_str()), ("b", "test://template/7/data"));
        assert!(cat.resource("nope://x").is_none());
    }

    #[test]
    fn titles_icons_annotations_and_schemas_pass_through_aggregation() {
        let tool = json!({
            "name": "weather",
            "title": "Weather",
            "icons": [{ "src": "https://example.com/w.png", "mimeType": "image/png", "sizes": ["48x48"] }],
            "annotations": { "title": "Weather lookup", "readOnlyHint": true, "openWorldHint": true },
            "inputSchema": { "type": "object", "properties": { "city": { "type": "string" } } },
            "outputSchema": { "type": "object", "properties": { "temperature": { "type": "number" } } },
            "execution": { "taskSupport": "optional" },
            "_meta": { "vendor/x": 1 }
        });
        let resource =
            json!({ "uri": "demo://r", "name": "r", "title": "R", "icons": [{ "src": "data:image/png;base64,AA==" }], "size": 3 });
        let prompt = json!({ "name": "p", "title": "P", "icons": [{ "src": "https://example.com/p.svg" }], "arguments": [] });
        let bc = BackendCatalog {
            tools: vec![obj(tool.clone())],
            resources: vec![obj(resource.clone())],
            prompts: vec![obj(prompt.clone())],
            ..Default::default()
        };
        let cat = Catalog::build([("b", &bc)]);
        let mut expected = tool;
        expected["name"] = json!("b__weather");
        assert_eq!(cat.tools[0], expected, "only the name changes");
        assert_eq!(cat.resources[0], resource);
        let mut expected = prompt;
        expected["name"] = json!("b__p");
        assert_eq!(cat.prompts[0], expected);
    }

    #[test]
    fn cursors_round_trip_and_pages_cover_everything() {
        assert_eq!(decode_cursor(&encode_cursor(42)), Some(42));
        assert_eq!(decode_cursor("garbage!"), None);
        let items: Vec<Value> = (0..5).map(|i| json!(i)).collect();
        let (p1, c1) = page(&items, 0, 2);
        assert_eq!(p1.len(), 2);
        let (p2, c2) = page(&items, decode_cursor(&c1.unwrap()).unwrap(), 2);
        assert_eq!(p2, &items[2..4]);
        let (p3, c3) = page(&items, decode_cursor(&c2.unwrap()).unwrap(), 2);
        assert_eq!(p3, &items[4..]);
        assert!(c3.is_none());
    }
}
