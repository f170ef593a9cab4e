//! `obhut repair`: restoring every object's replicas to its policy, followed with a progress
//! bar, or only its state.

use crate::AdminArgs;
use crate::cli::shared::{Client, bar, runtime};
use anyhow::{Result, bail};
use obhut_admin::wire::RepairStarted;
use obhut_maintenance::{RepairState, RepairStatus};
use std::time::Duration;

fn print_status(st: &RepairStatus) {
    println!(
        "repair {} ({}): {} of {} objects, {} upload parts, {} replicas copied, {} removed, {} failed; scrubber: {} replicas checked, {} bad, {} repaired",
        st.state.as_str(),
        st.reason,
        st.objects_done,
        st.objects_total,
        st.parts_done,
        st.replicas_copied,
        st.replicas_removed,
        st.objects_failed + st.parts_failed,
        st.scrub_checked,
        st.scrub_bad,
        st.scrub_repaired,
    );
    for e in &st.errors {
        println!("  error: {e}");
    }
}

/// `obhut repair`: starts a pass (or joins the running one) and follows it with a progress
/// bar; `--status` prints where it is.
pub fn run(args: &AdminArgs, status_only: bool) -> Result<()> {
    let client = Client::new(args)?;
    runtime()?.block_on(async {
        if status_only {
            let st: RepairStatus = client.get("/v1/repair").await?;
            print_status(&st);
            return Ok(());
        }
        let _: RepairStarted = client.post("/v1/repair", None::<&()>).await?;
        let progress = bar(0);
        progress.set_message("restoring replicas");
        loop {
            let st: RepairStatus = client.get("/v1/repair").await?;
            progress.set_length(st.objects_total);
            progress.set_position(st.objects_done);
            if st.state != RepairState::Running {
                progress.finish_and_clear();
                print_status(&st);
                if st.state == RepairState::Failed || st.objects_failed + st.parts_failed > 0 {
                    bail!("repair did not restore every object (see the errors above)");
                }
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
}
