//! The rules of `auth`, each with the clock given, so nothing waits.

use super::*;
use std::net::{Ipv4Addr, Ipv6Addr};

const ALICE_PASSWORD: &[u8] = b"correct horse battery staple";

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn users_file() -> String {
    format!(
        "# example\n\
         alice {} admin\n\
         \n\
         bob   {}   write   # trailing comment\r\n\
         \tcarol {} read\n",
        hash_password(ALICE_PASSWORD),
        hash_password(b"bob's"),
        hash_password(b"carol's"),
    )
}

#[test]
fn each_permission_allows_exactly_its_classes() {
    use Access::*;
    let table = [
        (Permission::Read, [true, true, false, false]),
        (Permission::Write, [true, true, true, false]),
        (Permission::Admin, [true, true, true, true]),
    ];
    for (permission, allowed) in table {
        for (access, want) in [Open, Read, Write, Admin].into_iter().zip(allowed) {
            assert_eq!(
                permission.allows(access),
                want,
                "{permission} for {}",
                access.name()
            );
        }
        assert_eq!(Permission::parse(permission.name()), Some(permission));
    }
    assert_eq!(Permission::parse("Admin"), None);
    assert_eq!(Permission::parse("role"), None);
}

#[test]
fn hashes_are_sha256_in_lower_case_hex() {
    // FIPS 180-2's test vectors.
    assert_eq!(
        hash_password(b""),
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(
        hash_password(b"abc"),
        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    let text = hash_password(b"secret");
    assert_eq!(PasswordHash::parse(&text).unwrap().to_string(), text);
    assert!(PasswordHash::parse(&text).unwrap().matches(b"secret"));
    assert!(!PasswordHash::parse(&text).unwrap().matches(b"secret\n"));
}

#[test]
fn malformed_hashes_are_refused_without_echoing_them() {
    let good = hash_password(b"x");
    let hex = good.strip_prefix(HASH_PREFIX).unwrap();
    let bad = [
        hex.to_string(),                                // no prefix
        format!("SHA256:{hex}"),                        // prefix case
        format!("sha256:{}", hex.to_uppercase()),       // upper-case hex
        format!("sha256:{}", &hex[..63]),               // short
        format!("sha256:{hex}0"),                       // long
        format!("sha256:{}g", &hex[..63]),              // not hex
        "sha256:".to_string(),                          // empty
        format!("sha256:{}é", &hex[..62]),              // multibyte
        "hunter2-typed-in-the-hash-column".to_string(), // a password
    ];
    for text in bad {
        let err = PasswordHash::parse(&text).unwrap_err();
        if text != HASH_PREFIX {
            assert!(!err.to_string().contains(&text), "{err}");
        }
    }
}

#[test]
fn a_difference_in_any_byte_fails_the_comparison() {
    // The comparison must look at every byte, not stop at the first or
    // compare a prefix: flip each byte of the stored hash in turn.
    let good = PasswordHash::of(b"pw");
    assert!(good.matches(b"pw"));
    for i in 0..32 {
        for flip in [0x01, 0x80] {
            let mut bytes = good.0;
            bytes[i] ^= flip;
            assert!(!PasswordHash(bytes).matches(b"pw"), "byte {i} ^ {flip:#x}");
        }
    }
}

#[test]
fn debug_output_never_shows_a_hash() {
    let users = Users::parse(&users_file()).unwrap();
    let alice = users.get("alice").unwrap();
    let hex = hash_password(ALICE_PASSWORD);
    let hex = hex.strip_prefix(HASH_PREFIX).unwrap();
    for text in [
        format!("{users:?}"),
        format!("{alice:?}"),
        format!("{:?}", PasswordHash::of(ALICE_PASSWORD)),
        format!("{:?}", BearerToken::new(b"tok")),
        format!("{:?}", Auth::new(users.clone())),
    ] {
        assert!(!text.contains(hex), "{text}");
        assert!(!text.contains(&hex[..16]), "{text}");
    }
    assert_eq!(
        format!("{users:?}"),
        r#"Users { names: ["alice", "bob", "carol"] }"#
    );
}

#[test]
fn the_users_file_allows_comments_blanks_tabs_and_crlf() {
    let users = Users::parse(&users_file()).unwrap();
    assert_eq!(users.len(), 3);
    assert_eq!(users.names(), ["alice", "bob", "carol"]);
    assert_eq!(users.get("alice").unwrap().permission(), Permission::Admin);
    assert_eq!(users.get("bob").unwrap().permission(), Permission::Write);
    assert_eq!(users.get("carol").unwrap().permission(), Permission::Read);
    assert!(users.get("dave").is_none());
}

#[test]
fn a_bad_line_is_named_with_what_is_wrong_and_no_secret() {
    let h = hash_password(b"pw");
    let hex = h.strip_prefix(HASH_PREFIX).unwrap().to_string();
    let cases: Vec<(String, usize, LineError)> = vec![
        (format!("alice {h}\n"), 1, LineError::Fields(2)),
        (
            format!("# c\n\nalice {h} admin extra\n"),
            3,
            LineError::Fields(4),
        ),
        ("alice hunter2 admin\n".into(), 1, LineError::BadHash),
        (format!("alice {h} hunter2\n"), 1, LineError::BadRole),
        (format!("alice {h} Admin\n"), 1, LineError::BadRole),
        (format!("al:ice {h} read\n"), 1, LineError::BadName),
        (
            format!("{} {h} read\n", "a".repeat(65)),
            1,
            LineError::BadName,
        ),
        (
            format!("alice {h} read\nbob {h} read\nalice {h} admin\n"),
            3,
            LineError::Duplicate {
                name: "alice".into(),
                first: 1,
            },
        ),
    ];
    for (text, line, what) in cases {
        let err = Users::parse(&text).unwrap_err();
        assert_eq!(
            err,
            UsersError::Line {
                line,
                what: what.clone()
            },
            "{text:?}"
        );
        let shown = err.to_string();
        assert!(shown.starts_with(&format!("line {line}: ")), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains(&hex[..12]), "{shown}");
        assert!(!shown.contains('\n'), "{shown}");
    }
}

#[test]
fn a_file_without_users_or_with_too_many_is_refused() {
    assert_eq!(Users::parse("").unwrap_err(), UsersError::NoUsers);
    assert_eq!(
        Users::parse("# nobody yet\n\n   \n").unwrap_err(),
        UsersError::NoUsers
    );
    let h = hash_password(b"pw");
    let many: String = (0..=MAX_USERS)
        .map(|i| format!("u{i} {h} read\n"))
        .collect();
    assert_eq!(Users::parse(&many).unwrap_err(), UsersError::TooMany);
}

#[test]
fn requirepass_sets_default_as_admin_unless_the_file_does() {
    let users = Users::parse(&users_file())
        .unwrap()
        .with_requirepass(b"rp")
        .unwrap();
    let default = users.authenticate(DEFAULT_USER, b"rp").unwrap();
    assert_eq!(default.permission(), Permission::Admin);
    assert_eq!(users.len(), 4);

    let alone = Users::none().with_requirepass(b"rp").unwrap();
    assert_eq!(alone.names(), [DEFAULT_USER]);

    let h = hash_password(b"pw");
    let file = format!("alice {h} read\ndefault {h} read\n");
    let err = Users::parse(&file)
        .unwrap()
        .with_requirepass(b"rp")
        .unwrap_err();
    assert_eq!(err, UsersError::DefaultTwice { line: 2 });
    assert!(err.to_string().contains("line 2"), "{err}");
}

#[test]
fn unknown_user_and_wrong_password_get_the_same_answer() {
    let users = Users::parse(&users_file()).unwrap();
    assert_eq!(
        users.authenticate("alice", ALICE_PASSWORD).unwrap().name(),
        "alice"
    );
    assert_eq!(users.authenticate("alice", b"nope"), Err(WrongPassword));
    assert_eq!(
        users.authenticate("mallory", ALICE_PASSWORD),
        Err(WrongPassword)
    );
    assert_eq!(users.authenticate("", b""), Err(WrongPassword));
    // A trailing newline is part of what the client sent, not stripped here.
    let mut with_newline = ALICE_PASSWORD.to_vec();
    with_newline.push(b'\n');
    assert_eq!(
        users.authenticate("alice", &with_newline),
        Err(WrongPassword)
    );
    // No users: nobody logs in, not even with the empty password.
    assert_eq!(
        Users::none().authenticate(DEFAULT_USER, b""),
        Err(WrongPassword)
    );
}

fn auth() -> Auth {
    Auth::new(Users::parse(&users_file()).unwrap())
}

#[test]
fn ten_failures_within_a_minute_lock_the_address_out_for_a_minute() {
    let auth = auth();
    let t0 = Instant::now();
    let attacker = ip("203.0.113.7");
    for i in 0..MAX_FAILURES as u64 {
        let at = t0 + Duration::from_secs(i * 5); // 10 failures over 45 s
        assert_eq!(
            auth.authenticate(Some(attacker), "alice", b"guess", at),
            Err(AuthError::WrongPassword)
        );
    }
    assert_eq!(auth.counts().failures, 10);
    assert_eq!(auth.counts().lockouts, 1);
    // The next attempt, even with the right password, is refused without a
    // password check: neither a success nor a failure is counted.
    let locked_at = t0 + Duration::from_secs(45);
    let next = locked_at + Duration::from_secs(1);
    assert_eq!(
        auth.authenticate(Some(attacker), "alice", ALICE_PASSWORD, next),
        Err(AuthError::TooManyAttempts {
            retry_after: Duration::from_secs(59)
        })
    );
    let counts = auth.counts();
    assert_eq!(
        (counts.successes, counts.failures, counts.refused),
        (0, 10, 1)
    );
    // Another address is not affected.
    assert!(auth
        .authenticate(Some(ip("198.51.100.1")), "alice", ALICE_PASSWORD, next)
        .is_ok());
    // Refused attempts do not extend the lockout: 60 s after it began, served.
    let just_before = locked_at + Duration::from_secs(59);
    assert!(matches!(
        auth.authenticate(Some(attacker), "alice", ALICE_PASSWORD, just_before),
        Err(AuthError::TooManyAttempts { .. })
    ));
    let after = locked_at + Duration::from_secs(60);
    assert!(auth
        .authenticate(Some(attacker), "alice", ALICE_PASSWORD, after)
        .is_ok());
    // And it starts from zero: nine more failures do not lock it again.
    for i in 0..9 {
        let at = after + Duration::from_millis(i);
        assert_eq!(
            auth.authenticate(Some(attacker), "bob", b"x", at),
            Err(AuthError::WrongPassword)
        );
    }
    assert!(auth.lockout().check(attacker, after).is_ok());
}

#[test]
fn the_window_slides_failures_older_than_a_minute_do_not_count() {
    let auth = auth();
    let t0 = Instant::now();
    let peer = ip("192.0.2.1");
    let fail = |secs: u64| {
        auth.authenticate(Some(peer), "alice", b"x", t0 + Duration::from_secs(secs))
            .unwrap_err()
    };
    let locked = |secs: u64| {
        auth.lockout()
            .check(peer, t0 + Duration::from_secs(secs))
            .is_err()
    };
    // Ten failures 7 s apart span 63 s: never ten within a minute.
    for i in 0..10 {
        fail(i * 7);
    }
    assert!(!locked(64));
    // An eleventh at 64 s: the last ten (7 s .. 64 s) span 57 s. Locked.
    fail(64);
    assert!(locked(65));
}

#[test]
fn a_success_does_not_clear_failures() {
    // Otherwise one valid account would let its holder guess another's
    // password without bound, logging in between guesses.
    let auth = auth();
    let t0 = Instant::now();
    let peer = ip("192.0.2.2");
    for i in 0..MAX_FAILURES as u32 {
        let at = t0 + Duration::from_millis(u64::from(i) * 10);
        auth.authenticate(Some(peer), "carol", b"carol's", at)
            .unwrap();
        auth.authenticate(Some(peer), "alice", b"guess", at)
            .unwrap_err();
    }
    assert!(matches!(
        auth.authenticate(Some(peer), "carol", b"carol's", t0 + Duration::from_secs(1)),
        Err(AuthError::TooManyAttempts { .. })
    ));
}

#[test]
fn loopback_is_not_exempt_and_unix_peers_are_not_tracked() {
    let auth = auth();
    let t0 = Instant::now();
    for _ in 0..MAX_FAILURES {
        auth.authenticate(Some(ip("127.0.0.1")), "alice", b"x", t0)
            .unwrap_err();
        auth.authenticate(None, "alice", b"x", t0).unwrap_err();
    }
    assert!(auth.lockout().check(ip("127.0.0.1"), t0).is_err());
    assert!(auth.authenticate(None, "alice", ALICE_PASSWORD, t0).is_ok());
    assert_eq!(auth.lockout().tracked(), 1);
    assert_eq!(auth.counts().failures, 20);
}

#[test]
fn an_ipv6_slash_64_is_one_source_and_mapped_ipv4_is_ipv4() {
    let lockout = Lockout::new(LockoutPolicy::default());
    let t0 = Instant::now();
    for i in 0..MAX_FAILURES as u16 {
        // Ten different addresses of one /64.
        let addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 0, 0, 0, i + 1);
        lockout.record_failure(IpAddr::V6(addr), t0);
    }
    assert!(lockout.check(ip("2001:db8:1:2::ffff"), t0).is_err());
    assert!(lockout.check(ip("2001:db8:1:3::1"), t0).is_ok());

    for _ in 0..MAX_FAILURES {
        lockout.record_failure(ip("::ffff:192.0.2.9"), t0);
    }
    assert!(lockout
        .check(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9)), t0)
        .is_err());
    assert!(lockout.check(ip("192.0.2.10"), t0).is_ok());

    assert!(is_loopback(ip("127.1.2.3")));
    assert!(is_loopback(ip("::1")));
    assert!(is_loopback(ip("::ffff:127.0.0.1")));
    assert!(!is_loopback(ip("10.0.0.1")));
    assert!(!is_loopback(ip("::ffff:10.0.0.1")));
}

#[test]
fn the_table_stays_within_its_cap_evicting_the_oldest() {
    let policy = LockoutPolicy {
        capacity: 100,
        ..LockoutPolicy::default()
    };
    let lockout = Lockout::new(policy);
    let t0 = Instant::now();
    // Lock out the first address, then flood with 10 000 others.
    let first = ip("192.0.2.1");
    for _ in 0..MAX_FAILURES {
        lockout.record_failure(first, t0);
    }
    assert!(lockout.check(first, t0).is_err());
    for i in 0..10_000u32 {
        let addr = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
        lockout.record_failure(addr, t0);
        assert!(lockout.tracked() <= 100);
    }
    assert_eq!(lockout.tracked(), 100);
    // The oldest went first: the first address is forgotten, the last kept.
    assert!(lockout.check(first, t0).is_ok());
    let table = lockout.lock();
    assert!(table
        .entries
        .contains_key(&Source::of(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + 9_999)))));
    assert!(!table
        .entries
        .contains_key(&Source::of(IpAddr::V4(Ipv4Addr::from(0x0a00_0000)))));
    // The order queue stays bounded too.
    assert!(table.order.len() <= 2 * 100, "{}", table.order.len());
}

#[test]
fn an_entry_costs_what_the_cap_documents() {
    // MAX_TRACKED_ADDRESSES' documentation says about 260 bytes an entry
    // (map slot and queue pair), about 2.7 MB at the cap. Keep it honest.
    let slot = std::mem::size_of::<(Source, Entry)>() + 1; // hashbrown's control byte
    let queue = std::mem::size_of::<(Source, u64)>();
    let per_entry = slot * 8 / 7 + queue; // at the map's 7/8 load factor
    assert!(per_entry <= 270, "{per_entry} bytes an entry");
    assert!(per_entry * MAX_TRACKED_ADDRESSES <= 2_700_000);
}

#[test]
fn purge_forgets_sources_with_nothing_recent() {
    let lockout = Lockout::new(LockoutPolicy::default());
    let t0 = Instant::now();
    lockout.record_failure(ip("192.0.2.1"), t0);
    for _ in 0..MAX_FAILURES {
        lockout.record_failure(ip("192.0.2.2"), t0);
    }
    lockout.purge(t0 + Duration::from_secs(30));
    assert_eq!(lockout.tracked(), 2);
    assert_eq!(lockout.locked_out(t0 + Duration::from_secs(30)), 1);
    lockout.purge(t0 + Duration::from_secs(61));
    assert_eq!(lockout.tracked(), 0);
}

#[test]
fn protected_mode_refuses_only_remote_peers_of_an_open_server() {
    let open = Auth::default();
    let closed = auth();
    assert!(!open.is_enabled());
    assert!(closed.is_enabled());
    let remote = Some(ip("192.0.2.5"));
    assert!(protected_mode_refuses(true, &open, remote));
    assert!(!protected_mode_refuses(true, &open, Some(ip("127.0.0.1"))));
    assert!(!protected_mode_refuses(true, &open, Some(ip("::1"))));
    assert!(!protected_mode_refuses(true, &open, None)); // Unix socket
    assert!(!protected_mode_refuses(false, &open, remote));
    assert!(!protected_mode_refuses(true, &closed, remote));
    for way_out in ["--requirepass-file", "--users-file", "--protected-mode no"] {
        assert!(PROTECTED_MODE_TEXT.contains(way_out));
    }
}

#[test]
fn the_bearer_token_matches_only_itself() {
    let token = BearerToken::new(b"s3cret-token");
    assert!(token.matches(b"s3cret-token"));
    assert!(!token.matches(b"s3cret-toke"));
    assert!(!token.matches(b"s3cret-token "));
    assert!(!token.matches(b""));
    assert!(token.matches_header(b"Bearer s3cret-token"));
    assert!(token.matches_header(b"bearer   s3cret-token  "));
    assert!(!token.matches_header(b"Bearer"));
    assert!(!token.matches_header(b"Bearer "));
    assert!(!token.matches_header(b"Bearers3cret-token"));
    assert!(!token.matches_header(b"Basic s3cret-token"));
    assert!(!token.matches_header(b"s3cret-token"));
}

#[test]
fn errors_read_as_one_line() {
    assert_eq!(
        AuthError::WrongPassword.to_string(),
        "invalid username-password pair"
    );
    let e = AuthError::TooManyAttempts {
        retry_after: Duration::from_millis(300),
    };
    assert_eq!(
        e.to_string(),
        "too many failed attempts from this address; retry in 1 s"
    );
}
