//! Lists a crate's public API, one item a line, sorted, from its rustdoc JSON: every module,
//! type, field, variant, function and method (with its signature), trait, constant and macro
//! a user can name, and the trait impls of public types. `.ci/run` compares the list with the
//! committed `api/<crate>.txt`, so every change to the public API is deliberate.
//!
//! ```sh
//! RUSTC_BOOTSTRAP=1 RUSTDOCFLAGS="-Z unstable-options --output-format json" \
//!     cargo doc -p mcp-oauth-core --no-deps --all-features
//! cargo run -p mcp-oauth-tests --bin public_api -- target/doc/mcp_oauth_core.json [--counts]
//! ```
//!
//! It reads the JSON as untyped values (the format's version moves with the toolchain; only a
//! few stable fields are used).

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashSet};

struct Api<'a> {
    index: &'a serde_json::Map<String, Value>,
    lines: BTreeSet<String>,
    counts: BTreeMap<&'static str, BTreeSet<String>>,
    seen: HashSet<(String, String)>,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(file) = args.get(1) else {
        eprintln!("usage: public_api <crate>.json [--counts]");
        std::process::exit(2);
    };
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("cannot read {file}: {e}"));
    let doc: Value = serde_json::from_str(&text).expect("rustdoc JSON");
    let index = doc["index"].as_object().expect("index");
    let root = doc["root"].to_string();
    let name = index[&root]["name"].as_str().unwrap_or("crate").to_owned();
    let mut api = Api { index, lines: BTreeSet::new(), counts: BTreeMap::new(), seen: HashSet::new() };
    api.item(&name, &root);
    if args.iter().any(|a| a == "--counts") {
        // Distinct items: one re-exported at the root and in its module counts once.
        for (kind, ids) in &api.counts {
            println!("{kind}: {}", ids.len());
        }
    } else {
        for line in &api.lines {
            println!("{line}");
        }
    }
}

impl Api<'_> {
    fn emit(&mut self, kind: &'static str, id: &str, line: String) {
        self.lines.insert(line);
        self.counts.entry(kind).or_default().insert(id.to_owned());
    }

    fn item(&mut self, path: &str, id: &str) {
        if !self.seen.insert((path.to_owned(), id.to_owned())) {
            return;
        }
        let Some(item) = self.index.get(id) else { return };
        let Some((kind, inner)) = item["inner"].as_object().and_then(|o| o.iter().next()) else { return };
        match kind.as_str() {
            "module" => {
                self.emit("modules", id, format!("mod {path}"));
                for child in inner["items"].as_array().into_iter().flatten() {
                    let child = child.to_string();
                    if let Some(c) = self.index.get(&child) {
                        if c["visibility"] == "public" {
                            let name = c["name"].as_str().unwrap_or("_");
                            let name = if c["inner"].get("use").is_some() { inner_use_name(c) } else { name.to_owned() };
                            self.item(&format!("{path}::{name}"), &child);
                        }
                    }
                }
            }
            "use" => {
                let target = inner["id"].to_string();
                if inner["is_glob"] == true {
                    self.emit("re-exports", id, format!("use {path}::* = {}", inner["source"].as_str().unwrap_or("?")));
                } else if self.index.contains_key(&target) {
                    self.item(path, &target);
                } else {
                    self.emit("re-exports", id, format!("use {path} = {}", inner["source"].as_str().unwrap_or("?")));
                }
            }
            "struct" => {
                self.emit("structs", id, format!("struct {path}{}", generics(&inner["generics"])));
                let fields = inner["kind"]["plain"]["fields"].as_array().or_else(|| inner["kind"]["tuple"].as_array());
                for (i, f) in fields.into_iter().flatten().enumerate() {
                    if let Some(field) = self.index.get(&f.to_string()) {
                        if field["visibility"] == "public" {
                            let name = field["name"].as_str().map(str::to_owned).unwrap_or_else(|| i.to_string());
                            self.emit("fields", &f.to_string(), format!("field {path}.{name}: {}", ty(&field["inner"]["struct_field"])));
                        }
                    }
                }
                self.impls(path, &inner["impls"]);
            }
            "enum" => {
                self.emit("enums", id, format!("enum {path}{}", generics(&inner["generics"])));
                for v in inner["variants"].as_array().into_iter().flatten() {
                    if let Some(variant) = self.index.get(&v.to_string()) {
                        let vname = format!("{path}::{}", variant["name"].as_str().unwrap_or("_"));
                        self.emit("variants", &v.to_string(), format!("variant {vname}"));
                        let vk = &variant["inner"]["variant"]["kind"];
                        let fields = vk["struct"]["fields"].as_array().or_else(|| vk["tuple"].as_array());
                        for (i, f) in fields.into_iter().flatten().enumerate() {
                            if let Some(field) = self.index.get(&f.to_string()) {
                                let name = field["name"].as_str().map(str::to_owned).unwrap_or_else(|| i.to_string());
                                self.emit(
                                    "fields",
                                    &f.to_string(),
                                    format!("field {vname}.{name}: {}", ty(&field["inner"]["struct_field"])),
                                );
                            }
                        }
                    }
                }
                self.impls(path, &inner["impls"]);
            }
            "union" => self.emit("structs", id, format!("union {path}")),
            "trait" => {
                self.emit("traits", id, format!("trait {path}{}", generics(&inner["generics"])));
                for i in inner["items"].as_array().into_iter().flatten() {
                    if let Some(it) = self.index.get(&i.to_string()) {
                        let n = format!("{path}::{}", it["name"].as_str().unwrap_or("_"));
                        self.member(&n, &i.to_string(), it);
                    }
                }
            }
            "function" => self.emit("functions", id, format!("fn {path}{}", signature(inner))),
            "constant" => self.emit("constants", id, format!("const {path}: {}", ty(&inner["type"]))),
            "static" => self.emit("constants", id, format!("static {path}: {}", ty(&inner["type"]))),
            "type_alias" => self.emit("type aliases", id, format!("type {path} = {}", ty(&inner["type"]))),
            "macro" | "proc_macro" => self.emit("macros", id, format!("macro {path}!")),
            _ => {}
        }
    }

    /// A trait's or an impl's item.
    fn member(&mut self, path: &str, id: &str, it: &Value) {
        let Some((kind, inner)) = it["inner"].as_object().and_then(|o| o.iter().next()) else { return };
        match kind.as_str() {
            "function" => self.emit("functions", id, format!("fn {path}{}", signature(inner))),
            "assoc_const" => self.emit("constants", id, format!("const {path}: {}", ty(&inner["type"]))),
            "assoc_type" => self.emit("type aliases", id, format!("type {path}")),
            _ => {}
        }
    }

    fn impls(&mut self, path: &str, impls: &Value) {
        for i in impls.as_array().into_iter().flatten() {
            let Some(imp) = self.index.get(&i.to_string()) else { continue };
            let inner = &imp["inner"]["impl"];
            if inner["is_synthetic"] == true || !inner["blanket_impl"].is_null() {
                continue; // auto traits and blanket impls follow from the rest
            }
            match inner["trait"]["path"].as_str() {
                Some(t) => self.emit("trait impls", &i.to_string(), format!("impl {t}{} for {path}", args(&inner["trait"]["args"]))),
                None => {
                    for m in inner["items"].as_array().into_iter().flatten() {
                        if let Some(it) = self.index.get(&m.to_string()) {
                            if it["visibility"] == "public" {
                                let n = format!("{path}::{}", it["name"].as_str().unwrap_or("_"));
                                self.member(&n, &m.to_string(), it);
                            }
                        }
                    }
                }
            }
        }
    }
}

fn inner_use_name(item: &Value) -> String {
    item["inner"]["use"]["name"].as_str().unwrap_or("_").to_owned()
}

fn generics(g: &Value) -> String {
    let names: Vec<String> = g["params"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["kind"]["type"]["is_synthetic"] != true)
        .map(|p| p["name"].as_str().unwrap_or("_").to_owned())
        .collect();
    if names.is_empty() {
        String::new()
    } else {
        format!("<{}>", names.join(", "))
    }
}

fn signature(f: &Value) -> String {
    let header = &f["header"];
    let mut s = String::new();
    if header["is_async"] == true {
        s.push_str(" async");
    }
    s.push_str(&generics(&f["generics"]));
    let inputs: Vec<String> =
        f["sig"]["inputs"].as_array().into_iter().flatten().map(|p| format!("{}: {}", p[0].as_str().unwrap_or("_"), ty(&p[1]))).collect();
    s.push_str(&format!("({})", inputs.join(", ")));
    if !f["sig"]["output"].is_null() {
        s.push_str(&format!(" -> {}", ty(&f["sig"]["output"])));
    }
    s
}

fn args(a: &Value) -> String {
    if let Some(ab) = a.get("angle_bracketed") {
        let mut parts: Vec<String> = ab["args"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|x| match (x.get("type"), x.get("lifetime")) {
                (Some(t), _) => ty(t),
                (_, Some(l)) => l.as_str().unwrap_or("'_").to_owned(),
                _ => "_".into(),
            })
            .collect();
        for c in ab["constraints"].as_array().into_iter().flatten() {
            parts.push(format!("{} = {}", c["name"].as_str().unwrap_or("_"), ty(&c["binding"]["equality"]["type"])));
        }
        if parts.is_empty() {
            return String::new();
        }
        return format!("<{}>", parts.join(", "));
    }
    if let Some(p) = a.get("parenthesized") {
        let ins: Vec<String> = p["inputs"].as_array().into_iter().flatten().map(ty).collect();
        let out = if p["output"].is_null() { String::new() } else { format!(" -> {}", ty(&p["output"])) };
        return format!("({}){out}", ins.join(", "));
    }
    String::new()
}

fn bounds(b: &Value) -> String {
    b.as_array()
        .into_iter()
        .flatten()
        .map(|x| match (x.get("trait_bound"), x.get("outlives")) {
            (Some(t), _) => format!("{}{}", t["trait"]["path"].as_str().unwrap_or("?"), args(&t["trait"]["args"])),
            (_, Some(l)) => l.as_str().unwrap_or("'_").to_owned(),
            _ => "?".into(),
        })
        .collect::<Vec<_>>()
        .join(" + ")
}

/// A type, written roughly as in source.
fn ty(t: &Value) -> String {
    let Some((kind, v)) = t.as_object().and_then(|o| o.iter().next()) else { return "_".into() };
    match kind.as_str() {
        "resolved_path" => format!("{}{}", v["path"].as_str().unwrap_or("?").trim_start_matches("$crate::"), args(&v["args"])),
        "generic" | "primitive" => v.as_str().unwrap_or("?").to_owned(),
        "borrowed_ref" => {
            let lt = v["lifetime"].as_str().map(|l| format!("{l} ")).unwrap_or_default();
            let m = if v["is_mutable"] == true { "mut " } else { "" };
            format!("&{lt}{m}{}", ty(&v["type"]))
        }
        "raw_pointer" => format!("*{} {}", if v["is_mutable"] == true { "mut" } else { "const" }, ty(&v["type"])),
        "tuple" => format!("({})", v.as_array().into_iter().flatten().map(ty).collect::<Vec<_>>().join(", ")),
        "slice" => format!("[{}]", ty(v)),
        "array" => format!("[{}; {}]", ty(&v["type"]), v["len"].as_str().unwrap_or("_")),
        "impl_trait" => format!("impl {}", bounds(v)),
        "dyn_trait" => {
            let traits: Vec<String> = v["traits"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| format!("{}{}", p["trait"]["path"].as_str().unwrap_or("?"), args(&p["trait"]["args"])))
                .collect();
            format!("dyn {}", traits.join(" + "))
        }
        "qualified_path" => {
            format!("<{} as {}>::{}", ty(&v["self_type"]), v["trait"]["path"].as_str().unwrap_or("?"), v["name"].as_str().unwrap_or("?"))
        }
        "function_pointer" => "fn(..)".into(),
        "infer" => "_".into(),
        other => other.to_owned(),
    }
}
