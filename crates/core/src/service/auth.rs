//! Who may do what: users, their passwords and permissions, and the bound on
//! guessing passwords.
//!
//! Without it, anyone who can reach a port can read and write every key,
//! flush the cache and call `save`. Authentication is what Redis offers
//! (`requirepass` and ACL users), with the same shapes, plus what Redis
//! lacks: a bound on brute force.
//!
//! Pure, like the rest of the service layer: no files, sockets, threads or
//! clocks. The caller passes text (a users file it read) and `Instant`s, so
//! every rule here is tested without waiting. Reading the files (permissions,
//! symlinks, trailing newlines) is `ops::secrets`'s job.
//!
//! * [`Permission`]: the users file's ROLE column (`read`, `write`, `admin`)
//!   and which [`Access`] classes each allows.
//! * [`PasswordHash`]: the `sha256:HEX` form of a password (as Redis's
//!   `#HEX` ACL form), checked in constant time.
//! * [`Users`]: the users file (`NAME sha256:HEX ROLE` per line), plus the
//!   user `default` that a requirepass password sets.
//! * [`Lockout`]: after [`MAX_FAILURES`] failed attempts from one address
//!   within [`LockoutPolicy::window`], that address is refused for
//!   [`LockoutPolicy::lockout`], before any password is checked.
//! * [`Auth`]: the object a `Service` holds: users, lockout and counters.
//! * [`BearerToken`]: the metrics port's `Authorization: Bearer` token.
//!
//! # What happens when both a users file and a requirepass name `default`
//!
//! The start is refused ([`UsersError::DefaultTwice`]): two sources for one
//! password leave the operator guessing which one is in force, and a silent
//! precedence would let a forgotten requirepass keep working after the users
//! file changed it. A users file without `default` plus a requirepass gives
//! the file's users and `default` (role admin) from the requirepass.
//!
//! # What is and is not secret
//!
//! Passwords and their hashes are secret: no error or `Debug` output of this
//! module contains either. User names are not: `ACL WHOAMI` and `NOPERM`
//! replies carry them, and looking a name up takes the time of a hash-map
//! lookup whether it exists or not.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::Access;

/// The JSON method that logs a connection in. Answered by the service
/// itself, before the registry (a registered method of that name is never
/// reached).
pub const METHOD: &str = "auth";

/// The user a requirepass password sets, and the one `AUTH password` (no
/// user name) and the JSON `auth` without `user` log in as.
pub const DEFAULT_USER: &str = "default";

/// Failed attempts from one address, within [`LockoutPolicy::window`], that
/// lock the address out.
pub const MAX_FAILURES: usize = 10;

/// Most addresses the [`Lockout`] table tracks at once; beyond that the
/// entry created first is evicted. Each entry costs about
/// `size_of::<Entry>()` plus the map's and the order queue's share, about
/// 260 bytes, so the table holds at most about 2.7 MB (checked by the test
/// `an_entry_costs_what_the_cap_documents`). An attacker with more
/// addresses than this evicts older entries, but gets no more than
/// [`MAX_FAILURES`] guesses a minute per address either way.
pub const MAX_TRACKED_ADDRESSES: usize = 10_000;

/// Longest user name accepted in a users file.
pub const MAX_USER_NAME: usize = 64;

/// Most users a users file may define.
pub const MAX_USERS: usize = 10_000;

/// The users file's ROLE column: what a user may do.
///
/// Each permission allows the [`Access`] classes of the one before it and one
/// more: `read` allows [`Access::Open`] and [`Access::Read`], `write` adds
/// [`Access::Write`], `admin` adds [`Access::Admin`]. (Not named `Role`,
/// which names a server's listeners.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Permission {
    /// `ping`, `fib`, `get`, `exists`, `ttl`, `stats` and the RESP read commands.
    Read,
    /// Also changes keys.
    Write,
    /// Also `save`, `FLUSHALL`/`FLUSHDB`, `CONFIG SET` and `CLIENT KILL`.
    Admin,
}

impl Permission {
    /// Every permission, least privileged first.
    pub const ALL: [Permission; 3] = [Permission::Read, Permission::Write, Permission::Admin];

    /// Whether a user with this permission may run a request of class `access`.
    #[inline]
    pub fn allows(self, access: Access) -> bool {
        match access {
            Access::Open | Access::Read => true,
            Access::Write => self >= Permission::Write,
            Access::Admin => self == Permission::Admin,
        }
    }

    /// The permission's name in the users file (`read`, `write`, `admin`).
    pub fn name(self) -> &'static str {
        match self {
            Permission::Read => "read",
            Permission::Write => "write",
            Permission::Admin => "admin",
        }
    }

    /// The permission named `name` (exactly, lower case), if any.
    pub fn parse(name: &str) -> Option<Permission> {
        Permission::ALL.into_iter().find(|p| p.name() == name)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The prefix of a stored password hash.
pub const HASH_PREFIX: &str = "sha256:";

/// A password's SHA-256, as the users file stores it (`sha256:` and 64
/// lower-case hex digits).
///
/// An unsalted hash, as Redis's ACL `#HEX` form: it keeps a leaked file from
/// showing the passwords as they are, but does not slow down guessing a weak
/// password from the file; use long random passwords (`openssl rand -base64
/// 32`). `Debug` does not show the hash.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PasswordHash([u8; 32]);

impl PasswordHash {
    /// The hash of `password` (its bytes as they are: no trailing newline is removed here).
    pub fn of(password: &[u8]) -> PasswordHash {
        PasswordHash(Sha256::digest(password).into())
    }

    /// Parses the `sha256:HEX` form. The error never contains the text.
    pub fn parse(text: &str) -> Result<PasswordHash, HashFormatError> {
        let hex = text.strip_prefix(HASH_PREFIX).ok_or(HashFormatError)?;
        let hex = hex.as_bytes();
        if hex.len() != 64 {
            return Err(HashFormatError);
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(hex.chunks_exact(2)) {
            *byte = (hex_digit(pair[0]).ok_or(HashFormatError)? << 4)
                | hex_digit(pair[1]).ok_or(HashFormatError)?;
        }
        Ok(PasswordHash(bytes))
    }

    /// Whether `password` hashes to this hash. The password is hashed and
    /// the two hashes compared in constant time (every byte, whatever the
    /// first difference).
    pub fn matches(&self, password: &[u8]) -> bool {
        bool::from(self.0.ct_eq(&PasswordHash::of(password).0))
    }
}

/// The error of [`PasswordHash::parse`]: deliberately without the text,
/// which may be a password typed in the wrong column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashFormatError;

impl fmt::Display for HashFormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the password hash is not \"{HASH_PREFIX}\" and 64 lower-case hex digits \
             (make one with `reactor-rpc hash-password`)"
        )
    }
}

impl std::error::Error for HashFormatError {}

/// Lower-case hex only: one spelling per hash, as `hash-password` prints it.
fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

impl fmt::Display for PasswordHash {
    /// The `sha256:HEX` form, as `reactor-rpc hash-password` prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(HASH_PREFIX)?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(<redacted>)")
    }
}

/// The `sha256:HEX` form of `password`, what `reactor-rpc hash-password` prints.
pub fn hash_password(password: &[u8]) -> String {
    PasswordHash::of(password).to_string()
}

/// One user: a name, a permission and a password hash.
///
/// Cheap to clone (the name is shared), so a session can keep the user it
/// authenticated as.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    name: Arc<str>,
    permission: Permission,
    hash: PasswordHash,
}

impl User {
    /// A user with a password given by its hash.
    pub fn new(name: &str, permission: Permission, hash: PasswordHash) -> User {
        User {
            name: Arc::from(name),
            permission,
            hash,
        }
    }

    /// The user's name (`ACL WHOAMI`, `NOPERM` replies, logs).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the user may do.
    pub fn permission(&self) -> Permission {
        self.permission
    }

    /// Whether the user may run a request of class `access`.
    #[inline]
    pub fn allows(&self, access: Access) -> bool {
        self.permission.allows(access)
    }
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("permission", &self.permission)
            .finish_non_exhaustive()
    }
}

/// The error of a failed password check: one answer for "no such user" and
/// "wrong password", so that a client cannot tell which user names exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrongPassword;

impl fmt::Display for WrongPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid username-password pair")
    }
}

impl std::error::Error for WrongPassword {}

/// Everyone who may log in: the users file's users, and `default` when a
/// requirepass password is set.
#[derive(Clone, Default)]
pub struct Users {
    by_name: HashMap<Arc<str>, User>,
    /// Where `default` came from, to word [`UsersError::DefaultTwice`].
    default_line: Option<usize>,
}

impl fmt::Debug for Users {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&str> = self.by_name.keys().map(|n| &**n).collect();
        names.sort_unstable();
        f.debug_struct("Users").field("names", &names).finish()
    }
}

/// What is wrong with a users file, or with the users as configured.
///
/// The texts never contain a password or a hash, nor any field of a bad
/// line but a user name (a role typed in the wrong column might be a
/// password).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UsersError {
    /// A line is not `NAME sha256:HEX ROLE`.
    Line {
        /// The line's number, from 1.
        line: usize,
        /// What is wrong with it.
        what: LineError,
    },
    /// The file defines no user (only comments and blank lines).
    NoUsers,
    /// More than [`MAX_USERS`] users.
    TooMany,
    /// Both the users file (at this line) and the requirepass set `default`.
    DefaultTwice {
        /// The users file's line defining `default`.
        line: usize,
    },
}

/// What is wrong with one line of a users file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LineError {
    /// Not three fields separated by blanks.
    Fields(usize),
    /// The name is longer than [`MAX_USER_NAME`], or has a character other
    /// than ASCII letters, digits and `_ - . @`.
    BadName,
    /// The second field is not `sha256:` and 64 lower-case hex digits.
    BadHash,
    /// The role is not `read`, `write` or `admin`.
    BadRole,
    /// The name was already defined, on the line given.
    Duplicate {
        /// The user's name.
        name: String,
        /// The line that defined it first.
        first: usize,
    },
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::Fields(n) => write!(
                f,
                "expected NAME sha256:HEX ROLE (3 fields), found {n} field{}",
                if *n == 1 { "" } else { "s" }
            ),
            LineError::BadName => write!(
                f,
                "the user name must be 1 to {MAX_USER_NAME} ASCII letters, digits or _ - . @"
            ),
            LineError::BadHash => HashFormatError.fmt(f),
            LineError::BadRole => f.write_str("the role must be read, write or admin"),
            LineError::Duplicate { name, first } => {
                write!(f, "user {name} is already defined on line {first}")
            }
        }
    }
}

impl fmt::Display for UsersError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UsersError::Line { line, what } => write!(f, "line {line}: {what}"),
            UsersError::NoUsers => f.write_str("defines no user"),
            UsersError::TooMany => write!(f, "defines more than {MAX_USERS} users"),
            UsersError::DefaultTwice { line } => write!(
                f,
                "line {line} defines user {DEFAULT_USER}, which the requirepass \
                 (--requirepass-file or REACTOR_RPC_REQUIREPASS) also sets: keep one"
            ),
        }
    }
}

impl std::error::Error for UsersError {}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_USER_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'@'))
}

impl Users {
    /// No users: authentication is off.
    pub fn none() -> Users {
        Users::default()
    }

    /// Parses a users file's text: one user per line, `NAME sha256:HEX
    /// ROLE`, fields separated by blanks; `#` starts a comment that runs
    /// to the end of the line; blank lines are allowed. A file with no user
    /// is an error ([`UsersError::NoUsers`]): authentication would be off
    /// although a users file was given.
    pub fn parse(text: &str) -> Result<Users, UsersError> {
        let mut users = Users::default();
        let mut lines: HashMap<Arc<str>, usize> = HashMap::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let content = raw.split('#').next().unwrap_or("");
            let fields: Vec<&str> = content.split_ascii_whitespace().collect();
            if fields.is_empty() {
                continue;
            }
            let bad = |what| UsersError::Line { line, what };
            let [name, hash, role] = fields[..] else {
                return Err(bad(LineError::Fields(fields.len())));
            };
            if !valid_name(name) {
                return Err(bad(LineError::BadName));
            }
            let hash = PasswordHash::parse(hash).map_err(|_| bad(LineError::BadHash))?;
            let permission = Permission::parse(role).ok_or_else(|| bad(LineError::BadRole))?;
            if let Some(&first) = lines.get(name) {
                return Err(bad(LineError::Duplicate {
                    name: name.to_string(),
                    first,
                }));
            }
            if users.by_name.len() == MAX_USERS {
                return Err(UsersError::TooMany);
            }
            let user = User::new(name, permission, hash);
            lines.insert(user.name.clone(), line);
            if name == DEFAULT_USER {
                users.default_line = Some(line);
            }
            users.by_name.insert(user.name.clone(), user);
        }
        if users.by_name.is_empty() {
            return Err(UsersError::NoUsers);
        }
        Ok(users)
    }

    /// Adds the user `default` with role admin and this password, as
    /// Redis's `requirepass` does. Refused when the users file already
    /// defines `default` (see the module's documentation).
    pub fn with_requirepass(mut self, password: &[u8]) -> Result<Users, UsersError> {
        if let Some(line) = self.default_line {
            return Err(UsersError::DefaultTwice { line });
        }
        let user = User::new(DEFAULT_USER, Permission::Admin, PasswordHash::of(password));
        self.by_name.insert(user.name.clone(), user);
        Ok(self)
    }

    /// How many users there are.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// No users: authentication is off.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The user named `name`.
    pub fn get(&self, name: &str) -> Option<&User> {
        self.by_name.get(name)
    }

    /// The users' names, sorted (for logs).
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.by_name.keys().map(|n| &**n).collect();
        names.sort_unstable();
        names
    }

    /// The user named `user` if `password` is theirs.
    ///
    /// Takes the same time whether the user exists or not: the candidate is
    /// hashed and compared, in constant time, against the user's hash or a
    /// fixed one, and the two outcomes are combined without a branch.
    pub fn authenticate(&self, user: &str, password: &[u8]) -> Result<&User, WrongPassword> {
        // A hash no password has been seen to produce (SHA-256 of nothing
        // would be the empty password's: not that).
        const NOBODY: PasswordHash = PasswordHash([0xa5; 32]);
        let candidate = PasswordHash::of(password);
        let found = self.by_name.get(user);
        let expected = found.map_or(&NOBODY, |u| &u.hash);
        let same = expected.0.ct_eq(&candidate.0) & subtle::Choice::from(u8::from(found.is_some()));
        match found {
            Some(u) if bool::from(same) => Ok(u),
            _ => Err(WrongPassword),
        }
    }
}

/// How the brute-force bound behaves: [`MAX_FAILURES`] failures within
/// `window` lock an address out for `lockout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// The span in which [`MAX_FAILURES`] failures lock an address out (60 s).
    pub window: Duration,
    /// How long a locked-out address is refused (60 s).
    pub lockout: Duration,
    /// Most addresses tracked at once ([`MAX_TRACKED_ADDRESSES`]).
    pub capacity: usize,
}

impl Default for LockoutPolicy {
    fn default() -> LockoutPolicy {
        LockoutPolicy {
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(60),
            capacity: MAX_TRACKED_ADDRESSES,
        }
    }
}

/// What [`Lockout`] keys its table by: an IPv4 address, or an IPv6 /64
/// prefix (one host usually holds a whole /64, so keying by the full
/// address would give it 2^64 separate allowances). IPv4-mapped IPv6
/// addresses count as their IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// An IPv4 address.
    V4([u8; 4]),
    /// The first 64 bits of an IPv6 address.
    V6Prefix([u8; 8]),
}

impl Source {
    /// The source an address counts as.
    pub fn of(ip: IpAddr) -> Source {
        match canonical(ip) {
            IpAddr::V4(v4) => Source::V4(v4.octets()),
            IpAddr::V6(v6) => {
                let o = v6.octets();
                let mut prefix = [0u8; 8];
                prefix.copy_from_slice(&o[..8]);
                Source::V6Prefix(prefix)
            }
        }
    }
}

/// `ip`, with an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, what a
/// dual-stack listener reports for an IPv4 peer) turned into IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether `peer` is a loopback address (127.0.0.0/8, `::1`, or
/// `::ffff:127.x.y.z`): what protected mode always serves. A Unix-socket
/// peer has no IP address; the caller serves it too.
pub fn is_loopback(peer: IpAddr) -> bool {
    canonical(peer).is_loopback()
}

/// One tracked source: its recent failures and any lockout.
#[derive(Debug, Clone)]
struct Entry {
    /// The last [`MAX_FAILURES`] failures, a ring; `None` until filled.
    failures: [Option<Instant>; MAX_FAILURES],
    /// Where the next failure goes in the ring.
    next: usize,
    /// Refused until then.
    locked_until: Option<Instant>,
    /// Its place in the eviction order (see [`Table::order`]).
    serial: u64,
}

/// The table behind the mutex.
#[derive(Debug, Default)]
struct Table {
    entries: HashMap<Source, Entry>,
    /// Sources in the order their entries were created, with the entry's
    /// serial; a pair whose serial no longer matches the entry's is stale
    /// (the entry was removed, or removed and created again) and skipped.
    order: VecDeque<(Source, u64)>,
    serial: u64,
}

impl Table {
    /// Removes the oldest live entry; stale order pairs on the way are dropped.
    fn evict_oldest(&mut self) {
        while let Some((source, serial)) = self.order.pop_front() {
            if self
                .entries
                .get(&source)
                .is_some_and(|e| e.serial == serial)
            {
                self.entries.remove(&source);
                return;
            }
        }
    }

    /// Keeps `order` within twice the entries: amortised O(1) per insert.
    fn compact(&mut self) {
        if self.order.len() > 2 * self.entries.len().max(16) {
            let entries = &self.entries;
            self.order
                .retain(|(s, serial)| entries.get(s).is_some_and(|e| e.serial == *serial));
        }
    }
}

/// The brute-force bound: per source address, [`MAX_FAILURES`] failures
/// within the policy's window lock it out for the policy's lockout, and a
/// locked-out source is refused before its password is looked at.
///
/// The table is bounded ([`LockoutPolicy::capacity`] sources, the one
/// tracked longest evicted first), and every operation holds its mutex for
/// one hash-map operation (plus, at the cap, one eviction): it never waits
/// on I/O or on another thread for longer. A successful login does not
/// clear a source's failures: otherwise a client holding one valid account
/// could interleave logins to guess another's password without bound.
/// Loopback gets no exemption: a local process guessing the admin password
/// is as much a threat, and an operator locked out for a minute can wait.
#[derive(Debug)]
pub struct Lockout {
    policy: LockoutPolicy,
    table: Mutex<Table>,
}

impl Lockout {
    /// An empty table with `policy`.
    pub fn new(policy: LockoutPolicy) -> Lockout {
        Lockout {
            policy,
            table: Mutex::new(Table::default()),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> LockoutPolicy {
        self.policy
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        // Nothing below can panic halfway through a change that matters, so
        // a poisoned table is still a consistent one.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `Err(retry_after)` when `peer` is locked out at `now`.
    pub fn check(&self, peer: IpAddr, now: Instant) -> Result<(), Duration> {
        let table = self.lock();
        match table
            .entries
            .get(&Source::of(peer))
            .and_then(|e| e.locked_until)
        {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// Records a failed attempt from `peer` at `now`. Returns true when it
    /// locks the source out (it was the [`MAX_FAILURES`]th within the window).
    pub fn record_failure(&self, peer: IpAddr, now: Instant) -> bool {
        let source = Source::of(peer);
        let mut table = self.lock();
        let table = &mut *table;
        if !table.entries.contains_key(&source) {
            if table.entries.len() >= self.policy.capacity.max(1) {
                table.evict_oldest();
            }
            table.serial += 1;
            let serial = table.serial;
            table.order.push_back((source, serial));
            table.entries.insert(
                source,
                Entry {
                    failures: [None; MAX_FAILURES],
                    next: 0,
                    locked_until: None,
                    serial,
                },
            );
            table.compact();
        }
        let Some(entry) = table.entries.get_mut(&source) else {
            return false;
        };
        // The ring holds the last MAX_FAILURES failures, this one included;
        // the next slot to overwrite is the oldest of them. If it is within
        // the window, MAX_FAILURES failures fell within it.
        entry.failures[entry.next] = Some(now);
        entry.next = (entry.next + 1) % MAX_FAILURES;
        let oldest = entry.failures[entry.next];
        let within = oldest.is_some_and(|t| now.saturating_duration_since(t) < self.policy.window);
        if within {
            entry.locked_until = Some(now + self.policy.lockout);
            entry.failures = [None; MAX_FAILURES];
        }
        within
    }

    /// Sources tracked now (for tests and `stats`).
    pub fn tracked(&self) -> usize {
        self.lock().entries.len()
    }

    /// Sources locked out at `now`.
    pub fn locked_out(&self, now: Instant) -> usize {
        self.lock()
            .entries
            .values()
            .filter(|e| e.locked_until.is_some_and(|u| u > now))
            .count()
    }

    /// Drops entries with no failure within the window and no lockout in
    /// force at `now`: housekeeping, so that the table empties when the
    /// attempts stop. Bounded by the table's cap.
    pub fn purge(&self, now: Instant) {
        let window = self.policy.window;
        let mut table = self.lock();
        table.entries.retain(|_, e| {
            e.locked_until.is_some_and(|u| u > now)
                || e.failures
                    .iter()
                    .flatten()
                    .any(|t| now.saturating_duration_since(*t) < window)
        });
        table.compact();
    }
}

/// Why [`Auth::authenticate`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// No such user, or not their password (one answer for both).
    WrongPassword,
    /// The source is locked out; the password was not checked.
    TooManyAttempts {
        /// How long until the lockout ends.
        retry_after: Duration,
    },
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::WrongPassword => WrongPassword.fmt(f),
            AuthError::TooManyAttempts { retry_after } => write!(
                f,
                "too many failed attempts from this address; retry in {} s",
                retry_after.as_secs().max(1)
            ),
        }
    }
}

impl std::error::Error for AuthError {}

/// The counters of [`Auth`], for `stats` and the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuthCounts {
    /// Successful logins.
    pub successes: u64,
    /// Wrong user or password (`reactor_rpc_auth_failures_total`).
    pub failures: u64,
    /// Attempts refused without a password check, the source being locked out.
    pub refused: u64,
    /// Lockouts started.
    pub lockouts: u64,
}

/// Authentication as a `Service` holds it: the users, the brute-force
/// bound, and counters. Shared by every connection (`&self` everywhere).
#[derive(Debug)]
pub struct Auth {
    users: Users,
    lockout: Lockout,
    successes: AtomicU64,
    failures: AtomicU64,
    refused: AtomicU64,
    lockouts: AtomicU64,
    /// When the lockout table was last purged ([`Auth::tidy`]).
    purged: Mutex<Option<Instant>>,
    /// At most one failure line a second (see [`Auth::login`]).
    log_gate: Mutex<LogGate>,
}

/// The failure log's rate limit: when the last line was written, and the
/// failures held back since.
#[derive(Debug, Default)]
struct LogGate {
    last: Option<Instant>,
    held: u64,
}

/// Failure lines written at most this often; the ones between are counted
/// in the next line.
const LOG_EVERY: Duration = Duration::from_secs(1);

/// The lockout table is purged of expired entries at most this often.
const PURGE_EVERY: Duration = Duration::from_secs(1);

impl Default for Auth {
    /// No users: authentication off.
    fn default() -> Auth {
        Auth::new(Users::none())
    }
}

impl Auth {
    /// Authentication with `users` and the default [`LockoutPolicy`].
    pub fn new(users: Users) -> Auth {
        Auth::with_policy(users, LockoutPolicy::default())
    }

    /// Authentication with `users` and a lockout policy (tests shorten it).
    pub fn with_policy(users: Users, policy: LockoutPolicy) -> Auth {
        Auth {
            users,
            lockout: Lockout::new(policy),
            successes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            lockouts: AtomicU64::new(0),
            purged: Mutex::new(None),
            log_gate: Mutex::new(LogGate::default()),
        }
    }

    /// Whether authentication is on: some user or a requirepass is set.
    /// When off, every client has every permission and protected mode (see
    /// [`protected_mode_refuses`]) guards non-loopback peers.
    #[inline]
    pub fn is_enabled(&self) -> bool {
        !self.users.is_empty()
    }

    /// The users.
    pub fn users(&self) -> &Users {
        &self.users
    }

    /// The brute-force table.
    pub fn lockout(&self) -> &Lockout {
        &self.lockout
    }

    /// Checks `password` for `user` on behalf of a client at `peer` (`None`:
    /// a Unix-socket peer, which has no address and is not tracked).
    ///
    /// A locked-out source gets [`AuthError::TooManyAttempts`] at once, with
    /// no hashing. Otherwise the password is checked in constant time; a
    /// failure is counted, and may lock the source out for its next attempts.
    pub fn authenticate(
        &self,
        peer: Option<IpAddr>,
        user: &str,
        password: &[u8],
        now: Instant,
    ) -> Result<&User, AuthError> {
        if let Some(ip) = peer {
            if let Err(retry_after) = self.lockout.check(ip, now) {
                self.refused.fetch_add(1, Ordering::Relaxed);
                return Err(AuthError::TooManyAttempts { retry_after });
            }
        }
        match self.users.authenticate(user, password) {
            Ok(user) => {
                self.successes.fetch_add(1, Ordering::Relaxed);
                Ok(user)
            }
            Err(WrongPassword) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                if let Some(ip) = peer {
                    if self.lockout.record_failure(ip, now) {
                        self.lockouts.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(AuthError::WrongPassword)
            }
        }
    }

    /// Logs `login` in as `user` with `password` ([`Auth::authenticate`],
    /// on behalf of the login's address); a failure is logged at warn
    /// level, at most one line a second (the lines held back are counted in
    /// the next one), naming the user and the address, never the password.
    pub fn login(
        &self,
        login: &mut Login,
        user: &str,
        password: &[u8],
        now: Instant,
    ) -> Result<(), AuthError> {
        let peer = login.peer;
        match self.authenticate(peer, user, password, now) {
            Ok(found) => {
                login.set(found);
                Ok(())
            }
            Err(e) => {
                self.log_failure(peer, user, e, now);
                Err(e)
            }
        }
    }

    fn log_failure(&self, peer: Option<IpAddr>, user: &str, e: AuthError, now: Instant) {
        let held = {
            let mut gate = self.log_gate.lock().unwrap_or_else(PoisonError::into_inner);
            if gate
                .last
                .is_some_and(|t| now.saturating_duration_since(t) < LOG_EVERY)
            {
                gate.held += 1;
                return;
            }
            gate.last = Some(now);
            std::mem::take(&mut gate.held)
        };
        let from = peer.map_or_else(|| "a local socket".to_owned(), |ip| ip.to_string());
        // A user name is not secret, but it is the client's text: shown
        // escaped and cut, so it cannot forge or flood log lines.
        let name: String = user.escape_debug().take(64).collect();
        log::warn!(
            "authentication failed for user \"{name}\" from {from}: {e} ({held} more failures since last report)"
        );
    }

    /// Checks a metrics scrape's `Authorization` header value against
    /// `token`, on behalf of a client at `peer`, under the same brute-force
    /// bound as passwords: a locked-out source is refused before any check,
    /// and a failure is counted, logged (rate-limited) and may lock the
    /// source out.
    pub fn check_token(
        &self,
        token: &BearerToken,
        peer: Option<IpAddr>,
        header: Option<&[u8]>,
        now: Instant,
    ) -> Result<(), AuthError> {
        if let Some(ip) = peer {
            if let Err(retry_after) = self.lockout.check(ip, now) {
                self.refused.fetch_add(1, Ordering::Relaxed);
                return Err(AuthError::TooManyAttempts { retry_after });
            }
        }
        if header.is_some_and(|h| token.matches_header(h)) {
            self.successes.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        self.failures.fetch_add(1, Ordering::Relaxed);
        if let Some(ip) = peer {
            if self.lockout.record_failure(ip, now) {
                self.lockouts.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.log_failure(peer, "(metrics token)", AuthError::WrongPassword, now);
        Err(AuthError::WrongPassword)
    }

    /// Periodic upkeep (the service's housekeeping calls it on every tick):
    /// at most once a second, forgets the sources whose failures and
    /// lockouts have all expired.
    pub fn tidy(&self, now: Instant) {
        {
            let mut purged = self.purged.lock().unwrap_or_else(PoisonError::into_inner);
            if purged.is_some_and(|t| now.saturating_duration_since(t) < PURGE_EVERY) {
                return;
            }
            *purged = Some(now);
        }
        if self.lockout.tracked() > 0 {
            self.lockout.purge(now);
        }
    }

    /// The counters so far.
    pub fn counts(&self) -> AuthCounts {
        AuthCounts {
            successes: self.successes.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            lockouts: self.lockouts.load(Ordering::Relaxed),
        }
    }
}

/// What one connection may do: nobody until it logs in when authentication
/// is on, and after that the user it logged in as.
///
/// Every connection keeps one (the JSON session, and RESP's command state);
/// a request asks [`Login::check`], which for a logged-in connection is one
/// comparison of its permission with the request's [`Access`] class: once a
/// connection is authenticated, authentication costs nothing more per
/// request.
#[derive(Debug, Clone, Default)]
pub struct Login {
    /// The user, once logged in.
    user: Option<User>,
    /// The client's address, which the brute-force bound counts failures
    /// by; `None` for a client that has none (a Unix socket, a test).
    peer: Option<IpAddr>,
}

/// Why [`Login::check`] refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// Authentication is on and the connection has not logged in.
    Unauthenticated,
    /// The user's permission does not allow the request's class.
    Forbidden,
}

impl Login {
    /// Nobody yet, for a client at `peer`.
    pub const fn new(peer: Option<IpAddr>) -> Login {
        Login { user: None, peer }
    }

    /// The client's address.
    pub fn peer(&self) -> Option<IpAddr> {
        self.peer
    }

    /// Whether a request of class `access` may run, with `auth` the
    /// server's users. With authentication off, everything may.
    #[inline]
    pub fn check(&self, auth: &Auth, access: Access) -> Result<(), Denied> {
        match &self.user {
            Some(user) if user.allows(access) => Ok(()),
            Some(_) => Err(Denied::Forbidden),
            None if access == Access::Open || !auth.is_enabled() => Ok(()),
            None => Err(Denied::Unauthenticated),
        }
    }

    /// Whether the server wants a login and this connection has none yet
    /// (Redis's `authRequired`): such a client's requests are bounded
    /// tighter ([`reactor_rpc_protocol::resp::Limits::unauthenticated`]).
    #[inline]
    pub fn awaits_login(&self, auth: &Auth) -> bool {
        self.user.is_none() && auth.is_enabled()
    }

    /// Logs in as `user` (after [`Auth::authenticate`]).
    pub fn set(&mut self, user: &User) {
        self.user = Some(user.clone());
    }

    /// The user's name: `default` before any login (Redis's `ACL WHOAMI`
    /// answers it for a connection that never authenticated).
    pub fn name(&self) -> &str {
        self.user.as_ref().map_or(DEFAULT_USER, User::name)
    }
}

/// The JSON error for a request [`Login::check`] refused: `unauthenticated`
/// or `forbidden`, naming the method (and the user, for `forbidden`).
pub fn denied_error(denied: Denied, method: &str, login: &Login) -> reactor_rpc_protocol::RpcError {
    use reactor_rpc_protocol::{ErrorCode, RpcError};
    let method: String = method.escape_debug().take(64).collect();
    match denied {
        Denied::Unauthenticated => RpcError::new(
            ErrorCode::Unauthenticated,
            format!("call auth first: {method} needs an authenticated connection"),
        ),
        Denied::Forbidden => RpcError::new(
            ErrorCode::Forbidden,
            format!("user {} may not call {method}", login.name().escape_debug()),
        ),
    }
}

/// Whether protected mode refuses a connection from `peer`: it is on, no
/// user and no password is configured, and the peer is neither loopback
/// nor a Unix-socket peer (`None`).
pub fn protected_mode_refuses(protected_mode: bool, auth: &Auth, peer: Option<IpAddr>) -> bool {
    protected_mode && !auth.is_enabled() && peer.is_some_and(|ip| !is_loopback(ip))
}

/// Why protected mode refused a connection, for the one refusal each
/// protocol sends before closing
/// ([`Refusal::ProtectedMode`](crate::session::Refusal::ProtectedMode) words
/// it per protocol).
pub const PROTECTED_MODE_TEXT: &str = "reactor-rpc is running in protected mode: no user and \
    no password is configured, so only loopback clients are served. Set a password \
    (--requirepass-file), define users (--users-file), or, if this network is trusted, \
    turn protected mode off (--protected-mode no)";

/// The metrics port's bearer token (`Authorization: Bearer TOKEN`), as
/// Prometheus's `authorization.credentials_file` sends it.
///
/// Kept as its SHA-256, and a candidate is hashed before the constant-time
/// comparison, so that neither the token's bytes nor its length show in
/// the time a check takes. `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken(PasswordHash);

impl BearerToken {
    /// The token, as read from its file.
    pub fn new(token: &[u8]) -> BearerToken {
        BearerToken(PasswordHash::of(token))
    }

    /// Whether `candidate` is the token (constant time).
    pub fn matches(&self, candidate: &[u8]) -> bool {
        self.0.matches(candidate)
    }

    /// Whether an `Authorization` header's value carries the token: the
    /// scheme `Bearer` (any case, as RFC 7235 says), blanks, then the token.
    pub fn matches_header(&self, value: &[u8]) -> bool {
        let scheme = b"bearer";
        let Some((head, rest)) = value.split_at_checked(scheme.len()) else {
            return false;
        };
        if !head.eq_ignore_ascii_case(scheme) || rest.first() != Some(&b' ') {
            return false;
        }
        let token = rest.trim_ascii();
        !token.is_empty() && self.matches(token)
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

#[cfg(test)]
mod tests;
