//! The RESP clients connected now, for `CLIENT LIST`, `CLIENT INFO` and
//! `CLIENT KILL`: one entry per session, in the [`Service`](crate::service::Service).
//!
//! A session registers itself on its first command and is removed when it
//! is dropped (its [`Registration`] guard), so the registry holds exactly the
//! live sessions that have spoken. What other connections may read (name,
//! library, protocol, last command, transaction size) is kept in the entry;
//! the per-command cost is two relaxed atomic stores (the last command and
//! the coarse time of the last interaction, in whole seconds from the
//! cache's clock, which the housekeeping moves), never a lock or a clock read.
//!
//! Killing another connection needs the server model: whoever makes the
//! session gives it a `kill` hook ([`Session::set_kill_hook`](super::Session::set_kill_hook)),
//! a no-op until the model sets one, and `CLIENT KILL` calls it.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Instant;

/// A hook that closes a connection (set by the server model).
pub type KillHook = Box<dyn Fn() + Send + Sync>;

/// What the registry knows of one client.
pub struct ClientEntry {
    /// The client id (`CLIENT ID`).
    pub id: u64,
    /// The peer's address.
    pub addr: SocketAddr,
    /// The local address the connection came in on.
    pub laddr: SocketAddr,
    created: Instant,
    /// The coarse second of the last command (see the module docs).
    last_seen: AtomicU64,
    /// The last command, as `(top index + 1) << 8 | (sub index + 1)`.
    last_cmd: AtomicU32,
    /// 2 or 3.
    resp: AtomicU8,
    /// Commands queued in an open transaction, or -1.
    multi: AtomicI64,
    names: Mutex<Names>,
    kill: Mutex<Option<KillHook>>,
    /// Set by the first `CLIENT KILL`: the hook runs once per connection,
    /// however many kills a pipeline sends before the connection is gone.
    killed: std::sync::atomic::AtomicBool,
}

#[derive(Default, Clone)]
struct Names {
    name: Option<Vec<u8>>,
    lib_name: Option<Vec<u8>>,
    lib_ver: Option<Vec<u8>>,
}

impl fmt::Debug for ClientEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientEntry")
            .field("id", &self.id)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ClientEntry {
    /// Records a command: its place in the command table (top-level index,
    /// and the subcommand's index for a container) and the coarse time.
    #[inline]
    pub(crate) fn saw(&self, top: usize, sub: Option<usize>, now_s: u64) {
        let code = ((top as u32 + 1) << 8) | sub.map_or(0, |s| s as u32 + 1);
        self.last_cmd.store(code, Relaxed);
        self.last_seen.store(now_s, Relaxed);
    }

    pub(crate) fn set_resp(&self, version: i64) {
        self.resp.store(version as u8, Relaxed);
    }

    pub(crate) fn set_multi(&self, queued: i64) {
        self.multi.store(queued, Relaxed);
    }

    pub(crate) fn set_names(
        &self,
        name: &Option<Vec<u8>>,
        lib_name: &Option<Vec<u8>>,
        lib_ver: &Option<Vec<u8>>,
    ) {
        *lock(&self.names) = Names {
            name: name.clone(),
            lib_name: lib_name.clone(),
            lib_ver: lib_ver.clone(),
        };
    }

    /// Sets the hook that closes this client's connection.
    pub fn set_kill_hook(&self, hook: KillHook) {
        *lock(&self.kill) = Some(hook);
    }

    /// Closes the connection, if the server model gave a hook; only the
    /// first call runs it.
    pub fn kill(&self) {
        if self.killed.swap(true, Relaxed) {
            return;
        }
        if let Some(hook) = &*lock(&self.kill) {
            hook();
        }
    }

    fn last_command(&self) -> String {
        let code = self.last_cmd.load(Relaxed);
        let top = (code >> 8) as usize;
        let sub = (code & 0xff) as usize;
        let Some(cmd) = top.checked_sub(1).and_then(|t| super::COMMANDS.get(t)) else {
            return "NULL".into();
        };
        match sub.checked_sub(1).and_then(|s| cmd.subcommands.get(s)) {
            Some(sub) => sub.name.into(),
            None => cmd.name.into(),
        }
    }

    /// One line of `CLIENT LIST` / `CLIENT INFO`, in Redis 7.0's shape
    /// (plus 7.2's `lib-name` and `lib-ver`), without the newline. Figures
    /// Redis has and we do not track (buffers, pub/sub) are 0.
    pub(crate) fn line(&self, now_s: u64, dirty_cas: bool) -> Vec<u8> {
        let names = lock(&self.names).clone();
        let show =
            |v: &Option<Vec<u8>>| String::from_utf8_lossy(v.as_deref().unwrap_or(b"")).into_owned();
        let multi = self.multi.load(Relaxed);
        let mut flags = String::new();
        if multi >= 0 {
            flags.push('x');
        }
        if dirty_cas {
            flags.push('d');
        }
        if flags.is_empty() {
            flags.push('N');
        }
        let age = self.created.elapsed().as_secs();
        let idle = now_s.saturating_sub(self.last_seen.load(Relaxed)).min(age);
        format!(
            "id={} addr={} laddr={} fd=0 name={} age={} idle={} flags={} db=0 sub=0 psub=0 \
             ssub=0 multi={} qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 \
             omem=0 tot-mem=0 events=r cmd={} user=default redir=-1 resp={} lib-name={} lib-ver={}",
            self.id,
            self.addr,
            self.laddr,
            show(&names.name),
            age,
            idle,
            flags,
            multi,
            self.last_command(),
            self.resp.load(Relaxed),
            show(&names.lib_name),
            show(&names.lib_ver),
        )
        .into_bytes()
    }
}

/// Removes its entry from the registry when the session goes.
pub struct Registration {
    entry: Arc<ClientEntry>,
    registry: Weak<Mutex<BTreeMap<u64, Arc<ClientEntry>>>>,
}

impl Registration {
    /// The entry.
    pub fn entry(&self) -> &Arc<ClientEntry> {
        &self.entry
    }
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.entry.fmt(f)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(map) = self.registry.upgrade() {
            lock(&map).remove(&self.entry.id);
        }
    }
}

/// The registry: every registered client by id.
#[derive(Default)]
pub struct Clients {
    map: Arc<Mutex<BTreeMap<u64, Arc<ClientEntry>>>>,
}

impl Clients {
    /// Registers a client; the entry goes when the returned guard is dropped.
    pub(crate) fn register(
        &self,
        id: u64,
        addr: SocketAddr,
        laddr: SocketAddr,
        now_s: u64,
    ) -> Registration {
        let entry = Arc::new(ClientEntry {
            id,
            addr,
            laddr,
            created: Instant::now(),
            last_seen: AtomicU64::new(now_s),
            last_cmd: AtomicU32::new(0),
            resp: AtomicU8::new(2),
            multi: AtomicI64::new(-1),
            names: Mutex::new(Names::default()),
            kill: Mutex::new(None),
            killed: std::sync::atomic::AtomicBool::new(false),
        });
        lock(&self.map).insert(id, entry.clone());
        Registration {
            entry,
            registry: Arc::downgrade(&self.map),
        }
    }

    /// Every registered client, by id.
    pub fn all(&self) -> Vec<Arc<ClientEntry>> {
        lock(&self.map).values().cloned().collect()
    }

    /// Clients connected now.
    pub fn len(&self) -> usize {
        lock(&self.map).len()
    }

    /// Whether no client is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
