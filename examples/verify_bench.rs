//! Measures fixci's own verification work (used by `bench/verify.sh`):
//! `verify_bench seal REPO REV PARENT N`: seconds of each of N sealed checkouts of REV (the
//! trees are left under PARENT);
//! `verify_bench libgit2 REPO REV PARENT N`: the same with libgit2's `checkout_tree` into a new
//! temporary folder (the sealed checkout's implementation before 2026-12-02), for comparison;
//! `verify_bench junit FILE N`: seconds of each of N parses of a JUnit report plus the by-id
//! comparison of its passed cases against themselves (the regression check's work);
//! `verify_bench overhead REPO BASE CANDIDATE SUITE`: one whole verification of CANDIDATE
//! against BASE with `SUITE` as the `suite-command` (two sealed checkouts, the suite at both
//! commits, JUnit parsing and the live-account cross-check, the by-id comparison); prints the
//! wall time, the test processes' time and fixci's own time (the difference), then the seconds
//! spent waiting, after the verification returned, for the background removal of its sealed
//! trees to finish (fixci waits for it before it exits).
use std::path::Path;
use std::time::Instant;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    match a.get(1).map(String::as_str) {
        Some(mode @ ("seal" | "libgit2")) => {
            let repo = git2::Repository::open(&a[2]).expect("repository");
            let commit = repo
                .revparse_single(&a[3])
                .and_then(|o| o.peel_to_commit())
                .expect("commit")
                .id();
            let parent = Path::new(&a[4]);
            for _ in 0..a[5].parse::<usize>().expect("N") {
                let t = Instant::now();
                if mode == "seal" {
                    let s = fixci::verify::sealed::seal(&repo, commit, Some(parent));
                    println!("{:.4}", t.elapsed().as_secs_f64());
                    // Kept (the script removes its folder at the end): deleting 10,000 files
                    // just before the next checkout slows that checkout on ext4 (see
                    // BENCHMARKS.md), and the three methods must start from the same state.
                    std::mem::forget(s.expect("seal"));
                } else {
                    let dir = tempfile::tempdir_in(parent).expect("temp dir");
                    let tree = repo
                        .find_commit(commit)
                        .and_then(|c| c.tree())
                        .expect("tree");
                    let mut co = git2::build::CheckoutBuilder::new();
                    co.target_dir(dir.path())
                        .force()
                        .recreate_missing(true)
                        .update_index(false);
                    repo.checkout_tree(tree.as_object(), Some(&mut co))
                        .expect("checkout");
                    println!("{:.4}", t.elapsed().as_secs_f64());
                    std::mem::forget(dir);
                }
            }
        }
        Some("junit") => {
            let xml = std::fs::read_to_string(&a[2]).expect("report");
            for _ in 0..a[3].parse::<usize>().expect("N") {
                let t = Instant::now();
                let cases = fixci::runners::outcome::parse_junit(&xml).expect("JUnit");
                let passed: std::collections::HashSet<String> =
                    cases.iter().map(|c| c.id()).collect();
                let missing = cases.iter().filter(|c| !passed.contains(&c.id())).count();
                assert_eq!(missing, 0);
                println!("{:.4}", t.elapsed().as_secs_f64());
            }
        }
        Some("overhead") => {
            let repo = git2::Repository::open(&a[2]).expect("repository");
            let rev = |r: &str| {
                repo.revparse_single(r)
                    .and_then(|o| o.peel_to_commit())
                    .expect("commit")
                    .id()
            };
            let (base, candidate) = (rev(&a[3]), rev(&a[4]));
            let logs = tempfile::tempdir().expect("temp dir");
            let mut on_run = |_: &str, _: u64, _: bool, _: String| {};
            let mut lim = fixci::verify::RunLimits {
                jail: None,
                deadline: Instant::now() + std::time::Duration::from_secs(3600),
                grace: std::time::Duration::from_secs(2),
                cancel: None,
                env_remove: Vec::new(),
                env: Vec::new(),
                log_dir: logs.path().to_path_buf(),
                on_run: &mut on_run,
            };
            let input = fixci::verify::VerifyInput {
                repo: &repo,
                base,
                candidate,
                repro: None,
                repro_is_new: false,
                runs: 0,
                ci_tests: Vec::new(),
                template: None,
                suite_command: Some(&a[5]),
                base_suite: None,
                gate: &[],
                stressed: None,
            };
            let t = Instant::now();
            let out = fixci::verify::verify_candidate(&input, &mut lim).expect("verification");
            let wall = t.elapsed().as_secs_f64();
            let tests: f64 = out.runs.iter().map(|(_, r)| r.duration.as_secs_f64()).sum();
            assert!(
                out.verification.failed().is_none(),
                "{:?}",
                out.verification
            );
            // The trees dropped during and at the end of the verification are removed in the
            // background; fixci waits for that before it exits, off the verification's path.
            let t = Instant::now();
            fixci::verify::sealed::wait_for_removals();
            let removal = t.elapsed().as_secs_f64();
            println!("{wall:.3} {tests:.3} {:.3} {removal:.3}", wall - tests);
        }
        _ => {
            eprintln!(
                "usage: verify_bench seal|libgit2 REPO REV PARENT N | junit FILE N | overhead REPO BASE CANDIDATE SUITE"
            );
            std::process::exit(2);
        }
    }
}
