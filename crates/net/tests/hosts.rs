//! Two or three real hosts on 127.0.0.1: RPC with the permission table, gossip, private network.

use std::time::Duration;

use cluster_actors::{RestartPolicy, Supervisor};
use cluster_net::{
    GossipMessage, InboundRpc, Keypair, Multiaddr, Net, NetActor, NetConfig, NetError, NetEvent, PeerId, RpcRequest,
    RpcResponse, TrustSet,
};
use tokio::sync::{broadcast, mpsc};

struct Host {
    net: Net,
    peer: PeerId,
    addr: Multiaddr,
    inbound: mpsc::Receiver<InboundRpc>,
    gossip: mpsc::Receiver<GossipMessage>,
    _sup: Supervisor,
}

async fn host(secret: Option<[u8; 32]>, trusted: &[String]) -> Host {
    let keypair = Keypair::generate_ed25519();
    let peer = keypair.public().to_peer_id();
    let config = NetConfig {
        keypair,
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        secret,
        dial_timeout: Duration::from_secs(2),
        rpc_timeout: Duration::from_secs(5),
        max_in_flight: 16,
        bootstrap: Vec::new(),
        topics: vec!["t".into()],
        heartbeat: Duration::from_millis(200),
        d_factor: 1,
        history_length: 6,
        history_gossip: 2,
        flood_publish: true,
        trust: TrustSet::new(&peer.to_string(), trusted),
    };
    let (in_tx, inbound) = mpsc::channel(16);
    let (g_tx, gossip) = mpsc::channel(16);
    let (e_tx, _) = broadcast::channel::<NetEvent>(16);
    let sup = Supervisor::new("net-test", Duration::from_millis(100));
    let actor = sup.spawn("net", 64, RestartPolicy::default(), move || {
        NetActor::new(config.clone(), in_tx.clone(), g_tx.clone(), e_tx.clone())
    });
    let net = Net::new(actor, peer, Duration::from_secs(5));
    let addr = wait_listen(&net).await;
    Host { net, peer, addr, inbound, gossip, _sup: sup }
}

async fn wait_listen(net: &Net) -> Multiaddr {
    for _ in 0..100 {
        if let Ok(s) = net.status().await
            && let Some(a) = s.listen_addrs.first()
        {
            return a.parse().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("host never listened");
}

/// Answers `Id`-like calls with the caller's id, so the test sees authentication at work.
fn serve(mut inbound: mpsc::Receiver<InboundRpc>) {
    tokio::spawn(async move {
        while let Some(rpc) = inbound.recv().await {
            let _ = rpc.reply.send(RpcResponse::Text(rpc.from.to_string()));
        }
    });
}

#[tokio::test]
async fn rpc_policy_gossip_and_private_network() {
    let secret = Some([7u8; 32]);
    let a = host(secret, &[]).await;
    let b = host(secret, &[]).await;
    b.net.add_address(a.peer, a.addr.clone());
    serve(a.inbound);

    // Open method: served, and the caller is authenticated.
    let r = b.net.call(a.peer, RpcRequest::Version, None).await.expect("open call");
    assert!(matches!(r, RpcResponse::Text(ref s) if *s == b.peer.to_string()), "{r:?}");

    // Trusted method from an untrusted peer: refused by the table, the handler never sees it.
    match b.net.call(a.peer, RpcRequest::Digest, None).await {
        Err(NetError::Remote { code: 401, message }) => assert!(message.contains("Consensus.Digest"), "{message}"),
        other => panic!("expected refusal, got {other:?}"),
    }

    // Gossip from b reaches a, signed by b.
    let mut a_gossip = a.gossip;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let got = loop {
        b.net.publish("t", b"hello".to_vec());
        if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(200), a_gossip.recv()).await {
            break m;
        }
        assert!(tokio::time::Instant::now() < deadline, "gossip never arrived");
    };
    assert_eq!(got.data, b"hello");
    assert_eq!(got.source, Some(b.peer));

    // A host with another secret cannot reach a at all.
    let c = host(Some([9u8; 32]), &[]).await;
    c.net.add_address(a.peer, a.addr.clone());
    let err = c.net.call(a.peer, RpcRequest::Version, Some(Duration::from_secs(4))).await.expect_err("wrong secret");
    assert!(matches!(err, NetError::Unreachable { .. } | NetError::Timeout { .. }), "{err:?}");
    drop(b.gossip);
}

#[tokio::test]
async fn trusted_peer_is_served() {
    let b_key_peer;
    let b = {
        let h = host(None, &[]).await;
        b_key_peer = h.peer;
        h
    };
    let a = host(None, &[b_key_peer.to_string()]).await;
    serve(a.inbound);
    b.net.add_address(a.peer, a.addr.clone());
    let r = b.net.call(a.peer, RpcRequest::Digest, None).await.expect("trusted call");
    assert!(matches!(r, RpcResponse::Text(_)));
}
