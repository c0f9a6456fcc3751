//! A fake LLM HTTP server for tests: real HTTP/1.1 on 127.0.0.1, scripted replies.
//!
//! [`FakeLlm::start`] takes a script of [`Reply`]s, consumed one per request in
//! order. A successful reply ([`Reply::text`]) takes the shape of whichever API
//! the request used: `POST .../chat/completions` gets an OpenAI chat
//! completion, `POST .../messages` an Anthropic message. Every request is
//! recorded ([`FakeLlm::requests`]) before it is answered. When the script runs
//! out, requests get a 500 saying so; other paths get a 404 and consume nothing.
//!
//! Each connection is served by its own thread and may carry several requests
//! (keep-alive). Dropping the [`FakeLlm`] stops the server; replies still
//! waiting out a delay give up within a few milliseconds.
//!
//! Hostile modes, for the client's defences:
//! - [`Reply::stream`] sends a huge or endless body (optionally announcing a
//!   `Content-Length`) until the client hangs up; [`FakeLlm::streamed`] says
//!   how many bytes went out and whether the client stopped the stream.
//! - [`Reply::redirect`] answers with a 3xx to a `Location` (typically another
//!   `FakeLlm` on another loopback port); that second server's
//!   [`FakeLlm::received_credentials`] says whether a key ever reached it.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Input tokens reported by [`Reply::text`].
pub const FAKE_INPUT_TOKENS: u64 = 100;
/// Output tokens reported by [`Reply::text`].
pub const FAKE_OUTPUT_TOKENS: u64 = 20;

/// Largest request accepted (headers plus body).
const MAX_REQUEST: usize = 16 * 1024 * 1024;
/// How often blocked threads check whether the server is stopping.
const POLL: Duration = Duration::from_millis(20);

/// One scripted answer.
#[derive(Debug, Clone)]
pub struct Reply {
    kind: ReplyKind,
    delay: Duration,
}

#[derive(Debug, Clone)]
enum ReplyKind {
    Text {
        text: String,
        input: u64,
        output: u64,
    },
    Status {
        code: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    Stream {
        code: u16,
        declared: Option<u64>,
        total: Option<u64>,
    },
}

/// What a streamed reply did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Streamed {
    /// Body bytes written to the socket.
    pub bytes: u64,
    /// Whether the writing stopped because the client closed the connection
    /// (as opposed to the body ending or the server stopping).
    pub client_hung_up: bool,
    /// Whether the stream finished at all.
    pub finished: bool,
}

impl Reply {
    /// A successful completion whose text is `code`, in the request's API
    /// shape, with [`FAKE_INPUT_TOKENS`] and [`FAKE_OUTPUT_TOKENS`] of usage.
    pub fn text(code: impl Into<String>) -> Reply {
        Reply::text_with_usage(code, FAKE_INPUT_TOKENS, FAKE_OUTPUT_TOKENS)
    }

    /// [`Reply::text`] with the given usage.
    pub fn text_with_usage(code: impl Into<String>, input: u64, output: u64) -> Reply {
        Reply {
            kind: ReplyKind::Text {
                text: code.into(),
                input,
                output,
            },
            delay: Duration::ZERO,
        }
    }

    /// A response with status `code` and `body` (sent as `application/json`).
    pub fn status(code: u16, body: impl Into<String>) -> Reply {
        Reply {
            kind: ReplyKind::Status {
                code,
                headers: Vec::new(),
                body: body.into(),
            },
            delay: Duration::ZERO,
        }
    }

    /// [`Reply::status`] with one extra header, e.g. `429` with `Retry-After: 1`.
    pub fn status_with_header(
        code: u16,
        header: impl Into<String>,
        value: impl Into<String>,
        body: impl Into<String>,
    ) -> Reply {
        Reply {
            kind: ReplyKind::Status {
                code,
                headers: vec![(header.into(), value.into())],
                body: body.into(),
            },
            delay: Duration::ZERO,
        }
    }

    /// An error body in the usual shape: `{"error":{"message":..}}`.
    pub fn error(code: u16, message: &str) -> Reply {
        Reply::status(code, json!({"error": {"message": message}}).to_string())
    }

    /// Waits `delay` before answering (with a successful completion): for timeouts.
    pub fn hang(delay: Duration) -> Reply {
        Reply::text("(answered after hanging)").delayed(delay)
    }

    /// A 200 whose body is `body` verbatim (e.g. malformed JSON).
    pub fn raw(body: impl Into<String>) -> Reply {
        Reply::status(200, body)
    }

    /// Status `code` with a body of `x` bytes streamed in 64 KiB writes until
    /// the client hangs up, or `total` bytes when given. `declared` is sent as
    /// `Content-Length` (may differ from `total`: a lying server); without it
    /// the body is delimited by closing the connection.
    pub fn stream(code: u16, declared: Option<u64>, total: Option<u64>) -> Reply {
        Reply {
            kind: ReplyKind::Stream {
                code,
                declared,
                total,
            },
            delay: Duration::ZERO,
        }
    }

    /// A `status` redirect (301, 302, 307, 308...) to `location`.
    pub fn redirect(status: u16, location: impl Into<String>) -> Reply {
        Reply::status_with_header(status, "location", location, "")
    }

    /// This reply, sent only after `delay`.
    pub fn delayed(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

/// A request the server received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The method, e.g. `POST`.
    pub method: String,
    /// The request target, e.g. `/v1/chat/completions`.
    pub path: String,
    /// Headers in order, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body parsed as JSON, or a JSON string holding it when it is not JSON.
    pub body: Value,
}

impl Recorded {
    /// Whether it carried an API key (`Authorization` or `x-api-key`).
    pub fn has_credentials(&self) -> bool {
        self.header("authorization").is_some() || self.header("x-api-key").is_some()
    }

    /// The first header named `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

struct Shared {
    script: Mutex<VecDeque<Reply>>,
    scripted: usize,
    requests: Mutex<Vec<Recorded>>,
    streamed: Mutex<Streamed>,
    stop: AtomicBool,
}

/// The running fake server; dropping it stops it.
pub struct FakeLlm {
    port: u16,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl FakeLlm {
    /// Starts a server on a free port of 127.0.0.1 that answers with `script`.
    ///
    /// Panics if no port can be bound (this is a test helper).
    pub fn start(script: Vec<Reply>) -> FakeLlm {
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("fake LLM: cannot bind 127.0.0.1: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("fake LLM: no local address: {e}"))
            .port();
        let shared = Arc::new(Shared {
            scripted: script.len(),
            script: Mutex::new(script.into()),
            requests: Mutex::new(Vec::new()),
            streamed: Mutex::new(Streamed::default()),
            stop: AtomicBool::new(false),
        });
        let acceptor_shared = Arc::clone(&shared);
        let acceptor = std::thread::Builder::new()
            .name(format!("fake-llm-{port}"))
            .spawn(move || accept_loop(listener, acceptor_shared))
            .unwrap_or_else(|e| panic!("fake LLM: cannot spawn a thread: {e}"));
        FakeLlm {
            port,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// The API base URL, e.g. `http://127.0.0.1:PORT/v1`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// The port listened on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The requests received so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared.requests).clone()
    }

    /// Whether any request received carried an API key.
    pub fn received_credentials(&self) -> bool {
        self.requests().iter().any(Recorded::has_credentials)
    }

    /// What the last [`Reply::stream`] did so far.
    pub fn streamed(&self) -> Streamed {
        *lock(&self.shared.streamed)
    }

    /// How many scripted replies are left.
    pub fn remaining(&self) -> usize {
        lock(&self.shared.script).len()
    }
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the acceptor blocked in accept().
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(handle) = self.acceptor.take() {
            let _ = handle.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let shared = Arc::clone(&shared);
        // Connection threads are detached: they notice `stop` within POLL.
        let _ = std::thread::Builder::new()
            .name("fake-llm-conn".to_string())
            .spawn(move || serve(stream, &shared));
    }
}

/// Serves the requests of one connection until it closes or the server stops.
fn serve(mut stream: TcpStream, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(POLL));
    let _ = stream.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let Some((request, close)) = read_request(&mut stream, &mut buf, shared) else {
            return;
        };
        let (status, headers, body, delay) = respond(&request, shared);
        lock(&shared.requests).push(request);
        let body = match body {
            Body::Fixed(body) => body,
            Body::Stream { declared, total } => {
                stream_response(&mut stream, status, declared, total, shared);
                return;
            }
        };
        let deadline = Instant::now() + delay;
        while Instant::now() < deadline {
            if shared.stop.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(POLL.min(deadline.saturating_duration_since(Instant::now())));
        }
        if write_response(&mut stream, status, &headers, &body, close).is_err() || close {
            return;
        }
    }
}

/// Reads one request; `None` on EOF, error, bad request or stop.
fn read_request(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    shared: &Shared,
) -> Option<(Recorded, bool)> {
    let head_end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i;
        }
        if !fill(stream, buf, shared)? {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split_whitespace();
    let method = first.next()?.to_string();
    let path = first.next()?.to_string();
    let version = first.next().unwrap_or("HTTP/1.1").to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.to_ascii_lowercase())
    };
    if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        let _ = write_response(
            stream,
            411,
            &[],
            r#"{"error":{"message":"fake LLM: chunked bodies are not supported"}}"#,
            true,
        );
        return None;
    }
    let length: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let body_start = head_end + 4;
    if length > MAX_REQUEST {
        return None;
    }
    while buf.len() < body_start + length {
        if !fill(stream, buf, shared)? {
            return None;
        }
    }
    let body_bytes: Vec<u8> = buf[body_start..body_start + length].to_vec();
    buf.drain(..body_start + length);
    let text = String::from_utf8_lossy(&body_bytes).into_owned();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    let close = match header("connection") {
        Some(c) => c.contains("close"),
        None => version == "HTTP/1.0",
    };
    let recorded = Recorded {
        method,
        path,
        headers,
        body,
    };
    Some((recorded, close))
}

/// Reads more bytes into `buf`: `Some(true)` if some came, `Some(false)` on
/// EOF, `None` on error, overflow or stop.
fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>, shared: &Shared) -> Option<bool> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if shared.stop.load(Ordering::SeqCst) || buf.len() > MAX_REQUEST {
            return None;
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Some(false),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Some(true);
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A response body: fixed, or streamed by [`stream_response`].
enum Body {
    Fixed(String),
    Stream {
        declared: Option<u64>,
        total: Option<u64>,
    },
}

/// Writes a streamed body (see [`Reply::stream`]) and closes the connection.
fn stream_response(
    stream: &mut TcpStream,
    status: u16,
    declared: Option<u64>,
    total: Option<u64>,
    shared: &Shared,
) {
    *lock(&shared.streamed) = Streamed::default();
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\nconnection: close\r\n",
        reason(status)
    );
    if let Some(n) = declared {
        head.push_str(&format!("content-length: {n}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.set_write_timeout(Some(POLL));
    let chunk = vec![b'x'; 64 * 1024];
    let mut hung_up = stream.write_all(head.as_bytes()).is_err();
    let mut sent: u64 = 0;
    while !hung_up && !shared.stop.load(Ordering::SeqCst) {
        let n = total.map_or(chunk.len() as u64, |t| (t - sent).min(chunk.len() as u64));
        if n == 0 {
            break;
        }
        // `n` is at most the chunk's length.
        match stream.write(&chunk[..n as usize]) {
            Ok(0) => hung_up = true,
            Ok(w) => {
                sent += w as u64;
                lock(&shared.streamed).bytes = sent;
            }
            // A client that stops reading without hanging up: keep checking `stop`.
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => hung_up = true,
        }
    }
    let _ = stream.flush();
    *lock(&shared.streamed) = Streamed {
        bytes: sent,
        client_hung_up: hung_up,
        finished: true,
    };
}

/// The status, extra headers, body and delay answering `request`.
fn respond(request: &Recorded, shared: &Shared) -> (u16, Vec<(String, String)>, Body, Duration) {
    let path = request.path.split('?').next().unwrap_or("");
    let api = if path.ends_with("/chat/completions") {
        Api::OpenAi
    } else if path.ends_with("/messages") {
        Api::Anthropic
    } else {
        let body = json!({"error": {"message": format!("fake LLM: unknown path {path}")}});
        return (
            404,
            Vec::new(),
            Body::Fixed(body.to_string()),
            Duration::ZERO,
        );
    };
    let Some(reply) = lock(&shared.script).pop_front() else {
        let message = format!(
            "fake LLM: script exhausted ({} replies were scripted)",
            shared.scripted
        );
        let body = json!({"error": {"message": message}});
        return (
            500,
            Vec::new(),
            Body::Fixed(body.to_string()),
            Duration::ZERO,
        );
    };
    let n = lock(&shared.requests).len() + 1;
    let model = request
        .body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("fake-model")
        .to_string();
    match reply.kind {
        ReplyKind::Text {
            text,
            input,
            output,
        } => {
            let body = match api {
                Api::OpenAi => json!({
                    "id": format!("chatcmpl-fake-{n}"),
                    "object": "chat.completion",
                    "created": 0,
                    "model": model,
                    "choices": [{
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }],
                    "usage": {
                        "prompt_tokens": input,
                        "completion_tokens": output,
                        "total_tokens": input + output,
                    },
                }),
                Api::Anthropic => json!({
                    "id": format!("msg_fake_{n}"),
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [{"type": "text", "text": text}],
                    "stop_reason": "end_turn",
                    "stop_sequence": null,
                    "usage": {"input_tokens": input, "output_tokens": output},
                }),
            };
            (200, Vec::new(), Body::Fixed(body.to_string()), reply.delay)
        }
        ReplyKind::Status {
            code,
            headers,
            body,
        } => (code, headers, Body::Fixed(body), reply.delay),
        ReplyKind::Stream {
            code,
            declared,
            total,
        } => (
            code,
            Vec::new(),
            Body::Stream { declared, total },
            reply.delay,
        ),
    }
}

enum Api {
    OpenAi,
    Anthropic,
}

fn write_response(
    stream: &mut TcpStream,
    status: u16,
    headers: &[(String, String)],
    body: &str,
    close: bool,
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: {}\r\n",
        reason(status),
        body.len(),
        if close { "close" } else { "keep-alive" }
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    stream.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        411 => "Length Required",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        529 => "Overloaded",
        _ => "Status",
    }
}
