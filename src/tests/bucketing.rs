//! Bucketing is the contract between targets: the same (salt, key) must land in the same bucket
//! natively and on wasm32, or a user would flip variants between the CLI and the proxy.

use xxhash_rust::xxh3::xxh3_64;

use super::{config, filler};
use crate::{bucket_for, Random, SimpleRequest, SplitMix64, BUCKETS};

/// How a golden-table string is built (long ones are generated, not spelled out).
#[derive(Clone, Copy)]
enum S {
    /// A literal string.
    Lit(&'static str),
    /// `filler(n)`: `n` ASCII bytes.
    Fill(usize),
    /// `s` repeated `n` times.
    Rep(&'static str, usize),
}

impl S {
    fn build(self) -> String {
        match self {
            S::Lit(s) => s.to_string(),
            S::Fill(n) => filler(n),
            S::Rep(s, n) => s.repeat(n),
        }
    }
}

use S::{Fill, Lit, Rep};

/// (salt, key, bucket) computed natively with `bucket_for`. "reviews:" is 8 bytes, so a key of
/// 248 bytes is the longest hashed one-shot on the stack (256 bytes in all); 249 streams.
const GOLDEN: &[(S, S, u16)] = &[
    (Lit("reviews"), Lit(""), 7190),
    (Lit("reviews"), Lit("alice"), 9826),
    (Lit("reviews"), Lit("bob"), 6355),
    (Lit("checkout"), Lit("alice"), 4356),
    (Lit(""), Lit(""), 6284),
    (Lit(""), Lit("x"), 3925),
    (Lit("reviews"), Lit("user-0"), 2897),
    (Lit("reviews"), Lit("user-99999"), 2232),
    (Lit("reviews"), Lit("10.0.0.1"), 7555),
    (Lit("reviews"), Lit("::1"), 2175),
    (Lit("reviews"), Lit("ユーザー-42"), 5210),
    (Lit("reviews"), Lit("😀"), 5187),
    (Lit("sälz"), Lit("Ünïcødé"), 9169),
    // xxh3's own 240-byte short/long threshold.
    (Lit("reviews"), Fill(232), 8166),
    (Lit("reviews"), Fill(233), 1600),
    // The 256-byte stack buffer: 255, 256 (one-shot), 257 (streaming) bytes hashed.
    (Lit("reviews"), Fill(247), 1800),
    (Lit("reviews"), Fill(248), 8946),
    (Lit("reviews"), Fill(249), 5356),
    // Keys of 255/256/257 bytes themselves (all streamed with the salt).
    (Lit("reviews"), Fill(255), 5058),
    (Lit("reviews"), Fill(256), 552),
    (Lit("reviews"), Fill(257), 2297),
    (Lit("reviews"), Fill(300), 2794),
    (Lit("reviews"), Fill(1000), 2404),
    (Lit("reviews"), Rep("é", 150), 9483),
    // Long salts: the prefix alone fills (255 + ':') or overflows (256 + ':') the buffer.
    (Fill(255), Lit(""), 7575),
    (Fill(256), Lit(""), 4269),
    (Fill(300), Fill(300), 4179),
];

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn golden_buckets() {
    assert!(GOLDEN.len() >= 20);
    let mismatches: Vec<String> = GOLDEN
        .iter()
        .enumerate()
        .filter_map(|(i, &(salt, key, want))| {
            let (salt, key) = (salt.build(), key.build());
            let got = bucket_for(&salt, &key);
            (got != want).then(|| {
                format!(
                    "row {i} (salt {} bytes, key {} bytes): want {want}, got {got}",
                    salt.len(),
                    key.len()
                )
            })
        })
        .collect();
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn buckets_are_in_range() {
    for &(salt, key, _) in GOLDEN {
        assert!(bucket_for(&salt.build(), &key.build()) < BUCKETS);
    }
}

/// The stack (one-shot) and streaming paths hash the same bytes: `xxh3_64(salt ":" key)`,
/// whichever side of the 256-byte boundary the salt and the key put the total.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn one_shot_and_streaming_agree() {
    let salt_lens = [0, 1, 7, 63, 64, 128, 200, 239, 240, 254, 255, 256, 257, 300];
    let mut checked = 0;
    for salt_len in salt_lens {
        let salt = filler(salt_len).to_uppercase();
        for key_len in (0..=320).filter(|k| (salt_len + 1 + k).abs_diff(256) <= 16 || k % 37 == 0) {
            let key = filler(key_len);
            let want = (xxh3_64(format!("{salt}:{key}").as_bytes()) % u64::from(BUCKETS)) as u16;
            assert_eq!(
                bucket_for(&salt, &key),
                want,
                "salt {salt_len} bytes, key {key_len} bytes"
            );
            checked += 1;
        }
    }
    assert!(checked > 300, "{checked}");
}

/// FNV-1a over the buckets, in order.
fn checksum(buckets: impl Iterator<Item = u16>) -> u64 {
    buckets.fold(0xcbf2_9ce4_8422_2325, |acc, b| {
        (acc ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Per-variant counts of `user-0` … `user-99999` under a policy, and the checksum of their buckets.
fn split_100k(json: &str) -> (Vec<usize>, u64) {
    let config = config(json);
    let policy = config.policy(0).expect("policy");
    let salt = policy.name().to_string();
    let mut counts = vec![0; policy.variants().len()];
    let buckets: Vec<u16> = (0..100_000)
        .map(|i| bucket_for(&salt, &format!("user-{i}")))
        .collect();
    for &b in &buckets {
        counts[policy.variant_for_bucket(b)] += 1;
    }
    (counts, checksum(buckets.into_iter()))
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn hundred_thousand_users_10_90() {
    let (counts, sum) = split_100k(
        r#"{"policies":[{"name":"reviews","variants":[
            {"name":"canary","weight":10},{"name":"stable","weight":90}]}]}"#,
    );
    assert_eq!(
        (counts, sum),
        (vec![10_126, 89_874], 5_474_941_290_620_941_377)
    );
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn hundred_thousand_users_20_30_50() {
    let (counts, sum) = split_100k(
        r#"{"policies":[{"name":"checkout","variants":[
            {"name":"a","weight":20},{"name":"b","weight":30},{"name":"c","weight":50}]}]}"#,
    );
    assert_eq!(
        (counts, sum),
        (vec![19_851, 30_216, 49_933], 17_024_680_009_684_155_229)
    );
}

/// A sticky decision uses exactly `bucket_for(salt, key)` and the variant owning that bucket.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn decide_uses_bucket_for() {
    let config = config(
        r#"{"policies":[{"name":"reviews","variants":[
            {"name":"canary","weight":10},{"name":"stable","weight":90}],
            "sticky":{"keys":[{"header":"x-user-id"}]}}]}"#,
    );
    let policy = config.policy(0).expect("policy");
    for i in 0..2_000 {
        let user = format!("user-{i}");
        let req = SimpleRequest::new("reviews", "/").header("x-user-id", &user);
        let d = super::decide(&config, &req).expect("decision");
        let b = bucket_for("reviews", &user);
        assert_eq!(d.bucket, Some(b), "{user}");
        assert_eq!(d.variant, policy.variant_for_bucket(b), "{user}");
    }
}

/// SplitMix64 drives the weight split and the minted ids: the reference outputs for seed 0,
/// and golden outputs for another seed.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn splitmix64_sequence() {
    let cases: &[(u64, [u64; 3])] = &[
        (
            0,
            [
                0xe220_a839_7b1d_cdaf,
                0x6e78_9e6a_a1b9_65f4,
                0x06c4_5d18_8009_454f,
            ],
        ),
        (
            42,
            [
                0xbdd7_3226_2feb_6e95,
                0x28ef_e333_b266_f103,
                0x4752_6757_130f_9f52,
            ],
        ),
    ];
    for &(seed, want) in cases {
        let mut rng = SplitMix64::new(seed);
        let got = [rng.next_u64(), rng.next_u64(), rng.next_u64()];
        assert_eq!(got, want, "seed {seed}: {got:#x?}");
    }
}

/// `fill` takes little-endian bytes of successive outputs, including a partial last chunk.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn random_fill_is_little_endian() {
    let mut buf = [0u8; 11];
    SplitMix64::new(0).fill(&mut buf);
    let mut want = Vec::new();
    want.extend_from_slice(&0xe220_a839_7b1d_cdaf_u64.to_le_bytes());
    want.extend_from_slice(&0x6e78_9e6a_a1b9_65f4_u64.to_le_bytes()[..3]);
    assert_eq!(buf.as_slice(), want.as_slice());
}
