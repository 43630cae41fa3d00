//! The namespace harness proves itself: the standard topology forwards, names are unique,
//! and namespaces disappear on drop, also when the test panics.

use std::{net::UdpSocket, path::Path, time::Duration};

use lb_tests::prelude::*;

fn exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

#[test]
fn topology_forwards_client_to_backend_and_is_removed_on_drop() {
    require_root();
    let topo = LbTopology::new(2).unwrap();
    let names = topo.names();
    assert_eq!(names.len(), 5);
    assert!(names.iter().all(|n| exists(n)));

    // A UDP server on backend 1, a client datagram routed through the lb namespace.
    let server = topo.backends[1]
        .run(|| {
            let s = UdpSocket::bind((backend4(1), 7000)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s
        })
        .unwrap();
    topo.client
        .run(|| UdpSocket::bind("0.0.0.0:0").unwrap().send_to(b"through the lb", (backend4(1), 7000)).unwrap())
        .unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = server.recv_from(&mut buf).expect("datagram forwarded by the lb namespace");
    assert_eq!(&buf[..n], b"through the lb");
    assert_eq!(from.ip(), CLIENT4);

    drop(server);
    drop(topo);
    assert!(names.iter().all(|n| !exists(n)), "namespaces left: {names:?}");
}

#[test]
fn names_are_unique_and_a_panic_still_cleans_up() {
    require_root();
    let a = Netns::new("u").unwrap();
    let b = Netns::new("u").unwrap();
    assert_ne!(a.name(), b.name());

    let name = std::thread::spawn(|| {
        let ns = Netns::new("panic").unwrap();
        let name = ns.name().to_string();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _ns = ns;
            panic!("test failure inside a namespace");
        }));
        assert!(result.is_err());
        name
    })
    .join()
    .unwrap();
    assert!(!exists(&name), "{name} survived the panic");
}

#[test]
fn processes_in_a_namespace_are_killed_with_it() {
    require_root();
    let ns = Netns::new("proc").unwrap();
    let mut child = ns.command("sleep").arg("30").spawn().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(ns.pids(), vec![child.id() as i32]);
    drop(ns);
    let status = child.wait().unwrap();
    assert!(!status.success(), "sleep should have been killed, got {status}");
}
