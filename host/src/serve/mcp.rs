//! MCP tools over the same [`Service`] as the HTTP API, with the official
//! Rust SDK (`rmcp`): on stdio (`llmos mcp`) for desktop assistants and
//! agent frameworks that spawn their tools, and as streamable HTTP at
//! `/mcp` on `llmos serve`. Tool results carry the outcome as structured
//! JSON, a short text for the model, and PNG pictures as images.

use std::borrow::Cow;
use std::sync::Arc;

use rmcp::ErrorData;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    JsonObject, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, ServerHandler};
use serde_json::{Value, json};

use super::service::{CellBody, FixBody, RunBody, Service, ServiceError, SessionBody};

/// The llmos tools.
#[derive(Clone)]
pub struct Tools {
    service: Arc<Service>,
    client: String,
}

impl Tools {
    /// Tools over `service`, counting runs in flight as `client`'s.
    pub fn new(service: Arc<Service>, client: impl Into<String>) -> Tools {
        Tools {
            service,
            client: client.into(),
        }
    }
}

fn schema(v: Value) -> Arc<JsonObject> {
    Arc::new(match v {
        Value::Object(o) => o,
        _ => JsonObject::new(),
    })
}

const LIMITS: &str = "Optional limits: {\"fuel\": \"2e9\", \"memory\": \"64MiB\", \"timeout\": \"5s\", \"output_limit\": \"1MiB\"} (tightened by the server's policy, never loosened).";

fn tools() -> Vec<Tool> {
    let limits = json!({"type": "object", "description": LIMITS, "properties": {
        "fuel": {"type": "string"}, "memory": {"type": "string"},
        "timeout": {"type": "string"}, "output_limit": {"type": "string"}}});
    vec![
        Tool::new(
            "run_code",
            "Run a program in a WebAssembly sandbox (python, javascript, lua) under hard fuel, memory, time and output limits. Returns status, stdout, stderr, the last expression's value, the error with its line, and outputs (charts as images). The program reaches the world only through the llmos kernel API (see api_reference).",
            schema(
                json!({"type": "object", "required": ["language", "code"], "properties": {
                "language": {"type": "string", "description": "python, javascript or lua"},
                "code": {"type": "string", "description": "The program"},
                "limits": limits,
                "seed": {"type": "integer", "minimum": 0, "description": "Seed: deterministic randomness and clocks"},
                "expect_stdout": {"type": "string", "description": "What it must print, else status wrong_output with a diff"}}}),
            ),
        ),
        Tool::new(
            "fix_code",
            "Run a program and, while it fails (or prints something other than expect_stdout), have the server's LLM repair it, re-running each version in the sandbox. Returns the result (ok, fixed, failed), the final code, each attempt's diff and the final outcome.",
            schema(
                json!({"type": "object", "required": ["language", "code"], "properties": {
                "language": {"type": "string"}, "code": {"type": "string"},
                "expect_stdout": {"type": "string"},
                "max_attempts": {"type": "integer", "minimum": 0, "maximum": 10},
                "limits": limits}}),
            ),
        ),
        Tool::new(
            "session_new",
            "Start a notebook session: an interpreter whose variables, functions and imports persist across cells.",
            schema(json!({"type": "object", "properties": {
                "language": {"type": "string", "description": "Default python"},
                "name": {"type": "string", "description": "Default: a new unique name"}}})),
        ),
        Tool::new(
            "session_run_cell",
            "Run the next cell of a session (it sees everything earlier cells defined).",
            schema(
                json!({"type": "object", "required": ["session", "code"], "properties": {
                "session": {"type": "string"}, "code": {"type": "string"}, "limits": limits}}),
            ),
        ),
        Tool::new(
            "read_output",
            "Read one output of a run (by the run id and output index a run returned) as svg, png, html or scene (3D JSON).",
            schema(
                json!({"type": "object", "required": ["run_id", "index"], "properties": {
                "run_id": {"type": "string"}, "index": {"type": "integer", "minimum": 0},
                "format": {"type": "string", "enum": ["svg", "png", "html", "scene", "txt"], "description": "Default png"}}}),
            ),
        ),
        Tool::new(
            "api_reference",
            "The llmos kernel API of a language (log, storage, viz, dom, quantum, process): signatures and docs.",
            schema(
                json!({"type": "object", "required": ["language"], "properties": {
                "language": {"type": "string"}}}),
            ),
        ),
    ]
}

/// A tool's failure: a tool error the model sees (bad arguments, an
/// unknown session) rather than a protocol error.
fn tool_error(e: impl std::fmt::Display) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(e.to_string())])
}

fn arg<'a>(args: &'a JsonObject, name: &str) -> Result<&'a str, String> {
    args.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("`{name}` (a string) is required"))
}

fn opt_str(args: &JsonObject, name: &str) -> Option<String> {
    args.get(name).and_then(Value::as_str).map(str::to_string)
}

fn limits(args: &JsonObject) -> Result<Option<super::service::LimitsBody>, String> {
    match args.get("limits") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v.clone())
            .map(Some)
            .map_err(|e| format!("`limits`: {e}")),
    }
}

/// The text a model reads about an outcome.
fn outcome_text(v: &Value) -> String {
    let mut s = format!(
        "status: {}",
        v.get("status").and_then(Value::as_str).unwrap_or("?")
    );
    if let Some(id) = v.get("id").and_then(Value::as_str) {
        s.push_str(&format!(" (run {id})"));
    }
    for (key, label) in [("stdout", "stdout"), ("stderr", "stderr")] {
        if let Some(t) = v.get(key).and_then(Value::as_str).filter(|t| !t.is_empty()) {
            s.push_str(&format!("\n{label}:\n{t}"));
        }
    }
    if let Some(val) = v.get("value").and_then(Value::as_str) {
        s.push_str(&format!("\nvalue: {val}"));
    }
    if let Some(e) = v.get("error").filter(|e| !e.is_null()) {
        let line = e.get("line").and_then(Value::as_u64);
        s.push_str(&format!(
            "\nerror: {}: {}{}",
            e.get("class").and_then(Value::as_str).unwrap_or(""),
            e.get("message").and_then(Value::as_str).unwrap_or(""),
            line.map(|l| format!(" (line {l})")).unwrap_or_default()
        ));
    }
    if let Some(d) = v.get("diff").and_then(Value::as_str) {
        s.push_str(&format!("\nexpected (-) vs actual (+):\n{d}"));
    }
    if let Some(Value::Array(outs)) = v.get("outputs") {
        for o in outs {
            s.push_str(&format!(
                "\noutput {}: {}",
                o.get("index").and_then(Value::as_u64).unwrap_or(0),
                o.get("summary").and_then(Value::as_str).unwrap_or("")
            ));
        }
    }
    s
}

impl Tools {
    /// PNG outputs of a run as MCP images.
    fn images(&self, v: &Value) -> Vec<ContentBlock> {
        let (Some(id), Some(Value::Array(outs))) =
            (v.get("id").and_then(Value::as_str), v.get("outputs"))
        else {
            return Vec::new();
        };
        outs.iter()
            .filter_map(|o| o.get("index").and_then(Value::as_u64))
            .filter_map(|i| self.service.output(id, i as u32, "png").ok())
            .map(|(mime, data)| ContentBlock::image(base64_encode(&data), mime))
            .collect()
    }

    fn outcome_result(&self, v: Value) -> CallToolResult {
        let mut content = vec![ContentBlock::text(outcome_text(&v))];
        content.extend(self.images(&v));
        let mut r = CallToolResult::success(content);
        r.structured_content = Some(v);
        r
    }

    async fn call(&self, name: &str, args: JsonObject) -> Result<CallToolResult, String> {
        let svc = &self.service;
        let err = |e: ServiceError| e.to_string();
        match name {
            "run_code" => {
                let body = RunBody {
                    language: arg(&args, "language")?.into(),
                    source: arg(&args, "code")?.into(),
                    name: None,
                    limits: limits(&args)?,
                    seed: args.get("seed").and_then(Value::as_u64),
                    expect_stdout: opt_str(&args, "expect_stdout"),
                    from: None,
                    wait: true,
                };
                let ticket = svc.ticket(&self.client).map_err(err)?;
                let v = svc.run(body, ticket).await.map_err(err)?;
                Ok(self.outcome_result(v))
            }
            "fix_code" => {
                let body = FixBody {
                    language: arg(&args, "language")?.into(),
                    source: arg(&args, "code")?.into(),
                    name: None,
                    limits: limits(&args)?,
                    seed: None,
                    expect_stdout: opt_str(&args, "expect_stdout"),
                    max_attempts: args
                        .get("max_attempts")
                        .and_then(Value::as_u64)
                        .map(|n| n.min(100) as u32),
                    wait: true,
                };
                let ticket = svc.ticket(&self.client).map_err(err)?;
                let id = svc.start_fix(body, ticket).map_err(err)?;
                svc.wait_fix(&id).await;
                let fix = svc.fix_json(&id).map_err(err)?;
                let mut text = format!(
                    "result: {}",
                    fix.get("result")
                        .and_then(|r| r.get("status"))
                        .and_then(Value::as_str)
                        .unwrap_or("unknown")
                );
                if let Some(e) = fix.get("error").and_then(Value::as_str) {
                    text.push_str(&format!("\nerror: {e}"));
                }
                if let Some(Value::Array(steps)) = fix.get("steps") {
                    for s in steps {
                        if let Some(d) = s.get("diff").and_then(Value::as_str) {
                            text.push_str(&format!("\n{d}"));
                        }
                    }
                }
                if let Some(code) = fix.get("code").and_then(Value::as_str) {
                    text.push_str(&format!("\nfinal code:\n{code}"));
                }
                if let Some(o) = fix.get("outcome").filter(|o| !o.is_null()) {
                    text.push_str(&format!("\nfinal run: {}", outcome_text(o)));
                }
                let mut r = CallToolResult::success(vec![ContentBlock::text(text)]);
                r.structured_content = Some(fix);
                Ok(r)
            }
            "session_new" => {
                let v = svc
                    .new_session(SessionBody {
                        name: opt_str(&args, "name"),
                        language: opt_str(&args, "language"),
                        from: None,
                        budget_fuel: None,
                    })
                    .await
                    .map_err(err)?;
                let mut r = CallToolResult::success(vec![ContentBlock::text(format!(
                    "session {} ({})",
                    v["name"].as_str().unwrap_or(""),
                    v["language"].as_str().unwrap_or("")
                ))]);
                r.structured_content = Some(v);
                Ok(r)
            }
            "session_run_cell" => {
                let session = arg(&args, "session")?.to_string();
                let body = CellBody {
                    source: arg(&args, "code")?.into(),
                    limits: limits(&args)?,
                    seed: None,
                };
                let ticket = svc.ticket(&self.client).map_err(err)?;
                let v = svc.run_cell(&session, body, ticket).await.map_err(err)?;
                let outcome = v.get("outcome").cloned().unwrap_or(Value::Null);
                let mut r = self.outcome_result(outcome);
                if let Some(ContentBlock::Text(t)) = r.content.first_mut() {
                    t.text = format!(
                        "cell {}: {}",
                        v.get("cell").and_then(Value::as_u64).unwrap_or(0),
                        t.text
                    );
                }
                r.structured_content = Some(v);
                Ok(r)
            }
            "read_output" => {
                let id = arg(&args, "run_id")?;
                let index = args
                    .get("index")
                    .and_then(Value::as_u64)
                    .and_then(|i| u32::try_from(i).ok())
                    .ok_or("`index` (a whole number) is required")?;
                let format = opt_str(&args, "format").unwrap_or_else(|| "png".into());
                let (mime, data) = svc.output(id, index, &format).map_err(err)?;
                let block = if mime.starts_with("image/png") {
                    ContentBlock::image(base64_encode(&data), mime)
                } else {
                    ContentBlock::text(String::from_utf8_lossy(&data).into_owned())
                };
                Ok(CallToolResult::success(vec![block]))
            }
            "api_reference" => {
                let language = arg(&args, "language")?;
                let entries = svc
                    .llmos()
                    .map_err(err)?
                    .api_reference(language)
                    .map_err(|e| e.to_string())?;
                let text = entries
                    .iter()
                    .map(|e| format!("{}\n{}\n", e.signature, e.doc))
                    .collect::<Vec<_>>()
                    .join("\n");
                Ok(CallToolResult::success(vec![ContentBlock::text(text)]))
            }
            other => Err(format!("no tool `{}`", crate::outcome::clip(other, 60))),
        }
    }
}

impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("llmos", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "llmos runs model-written code safely in WebAssembly sandboxes and repairs it: use run_code to execute, fix_code to run and repair, sessions for state kept across cells.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(tools()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let name: Cow<'static, str> = request.name.clone();
        if !tools().iter().any(|t| t.name == name) {
            return Err(ErrorData::invalid_params(
                format!("no tool `{}`", crate::outcome::clip(&name, 60)),
                None,
            ));
        }
        let args = request.arguments.unwrap_or_default();
        let result = match self.call(&name, args).await {
            Ok(r) => r,
            Err(e) => tool_error(e),
        };
        Ok(result.into())
    }
}

fn base64_encode(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}
