//! Container-id detection for the `c:` field, as Datadog's clients do it: `/proc/self/cgroup`
//! first, then `/proc/self/mountinfo`.

use std::path::Path;

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `[0-9a-f]{64}`, a UUID (`8-4-4-4-12`, `-` or `_`), or an ECS task id (`[0-9a-f]{32}-\d+`).
fn is_container_id(s: &str) -> bool {
    if is_hex(s, 64) {
        return true;
    }
    if let Some((task, n)) = s.split_once('-')
        && is_hex(task, 32)
        && !n.is_empty()
        && n.bytes().all(|b| b.is_ascii_digit())
    {
        return true;
    }
    let parts: Vec<&str> = s.split(['-', '_']).collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| is_hex(p, n))
}

/// Finds a container id at the end of a cgroup path such as
/// `/kubepods/pod1/cri-containerd-<id>.scope` or `/docker/<id>`.
fn from_cgroup_path(path: &str) -> Option<&str> {
    let last = path.trim_end().rsplit('/').next()?;
    // Cut a systemd unit suffix such as `.scope`.
    let last = last.split('.').next()?;
    let starts = std::iter::once(0).chain(
        last.char_indices()
            .filter(|(_, c)| matches!(c, '-' | ':'))
            .map(|(i, _)| i + 1),
    );
    starts
        .map(|i| &last[i..])
        .find(|candidate| is_container_id(candidate))
}

/// Reads a container id from the text of `/proc/self/cgroup`.
pub(crate) fn from_cgroup(text: &str) -> Option<String> {
    text.lines()
        .filter_map(|line| line.splitn(3, ':').nth(2))
        .find_map(from_cgroup_path)
        .map(str::to_owned)
}

/// Reads a container id from the text of `/proc/self/mountinfo`: the runtime mounts the
/// container's `hostname` file from `.../containers/<id>/hostname`.
pub(crate) fn from_mountinfo(text: &str) -> Option<String> {
    text.lines()
        .flat_map(str::split_whitespace)
        .filter(|field| field.ends_with("/hostname"))
        .find_map(|field| {
            let parts: Vec<&str> = field.split('/').collect();
            parts.windows(2).find_map(|w| {
                (w[0] == "containers" && is_container_id(w[1])).then(|| w[1].to_owned())
            })
        })
}

/// The container this process runs in, if the files under `proc_dir` tell.
pub(crate) fn container_id(proc_dir: &Path) -> Option<String> {
    let read = |name: &str| std::fs::read_to_string(proc_dir.join(name)).ok();
    read("cgroup")
        .and_then(|t| from_cgroup(&t))
        .or_else(|| read("mountinfo").and_then(|t| from_mountinfo(&t)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3726184226f5d3147c25fdeab5b60097e378e8a720503a5e19ecfdf29f869860";

    #[test]
    fn cgroup_v1_docker_and_v2_systemd() {
        let v1 = format!("12:memory:/docker/{ID}\n11:cpu:/docker/{ID}\n");
        assert_eq!(from_cgroup(&v1).as_deref(), Some(ID));
        let v2 = format!("0::/system.slice/docker-{ID}.scope\n");
        assert_eq!(from_cgroup(&v2).as_deref(), Some(ID));
        let k8s = format!("0::/kubepods.slice/kubepods-pod1.slice/cri-containerd:{ID}\n");
        assert_eq!(from_cgroup(&k8s).as_deref(), Some(ID));
        let ecs = "1:name=systemd:/ecs/task/34dc0b5e626f2c5c4c5170e34b10e765-1234567890\n";
        assert_eq!(
            from_cgroup(ecs).as_deref(),
            Some("34dc0b5e626f2c5c4c5170e34b10e765-1234567890")
        );
        let uuid = "0::/kubepods/pod/aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee\n";
        assert_eq!(
            from_cgroup(uuid).as_deref(),
            Some("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee")
        );
        assert_eq!(
            from_cgroup("0::/user.slice/user-0.slice/session-1.scope\n"),
            None
        );
        assert_eq!(from_cgroup("0::/\n"), None);
    }

    #[test]
    fn mountinfo_hostname_mount() {
        let text = format!(
            "2138 2120 0:66 / /proc rw\n\
             2160 2137 254:1 /docker/containers/{ID}/hostname /etc/hostname rw,relatime - ext4 /dev/vda1 rw\n"
        );
        assert_eq!(from_mountinfo(&text).as_deref(), Some(ID));
        assert_eq!(from_mountinfo("1 2 3:4 / / rw\n"), None);
    }

    #[test]
    fn missing_files_mean_no_container() {
        assert_eq!(container_id(Path::new("/nonexistent")), None);
    }
}
