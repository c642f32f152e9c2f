//! fleet-docs: man pages and completions for every binary, from clap.

use std::process::Command;

#[test]
fn man_pages_and_completions_for_every_binary() {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_fleet-docs"))
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let share = dir.path().join("share");
    for tool in ["prun", "pcp", "pslurp", "pnuke", "pplay", "fleet-lab"] {
        let page = std::fs::read_to_string(share.join(format!("man/man1/{tool}.1"))).unwrap();
        assert!(page.contains(".TH") && page.contains(tool), "{tool}.1");
        let bash = share.join(format!("bash-completion/completions/{tool}"));
        assert!(std::fs::read_to_string(&bash)
            .unwrap()
            .contains("complete -F"));
        let syntax = Command::new("bash").arg("-n").arg(&bash).status().unwrap();
        assert!(syntax.success(), "{tool}'s bash completion does not parse");
        assert!(share.join(format!("zsh/site-functions/_{tool}")).exists());
        assert!(share
            .join(format!("fish/vendor_completions.d/{tool}.fish"))
            .exists());
    }
    let pplay = std::fs::read_to_string(share.join("man/man1/pplay.1")).unwrap();
    assert!(pplay.contains("resume"), "flags are documented");
}
