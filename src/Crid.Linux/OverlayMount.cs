using System.Runtime.InteropServices;
using System.Text;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace Crid.Linux;

/// <summary>
/// A container's root filesystem: an overlay of an image's layer folders (read-only, top-most
/// first) under a writable layer of the container's own.
/// </summary>
/// <remarks>
/// mount(2) copies its data argument as one page (copy_mount_options), so the option string must
/// fit in 4095 bytes. An image of a few layers fits with absolute paths, and is mounted so, from
/// the calling thread. Forty layers with absolute snapshot paths do not: as containers/storage
/// does, the layers then get one-character-ish symlinks in a folder of the container's own
/// (<c>0</c>, <c>1</c>, ...) and the mount names them relative to that folder: ~5 bytes a layer,
/// so overlayfs's own limit (500 lower layers) is reached long before the page's. The relative
/// names need that folder as the working directory, and a process has one working directory for
/// all its threads; so the mount runs on a thread of its own that first unshares its filesystem
/// context (unshare(2) CLONE_FS: cwd, root and umask become the thread's own) and then exits.
///
/// In a pod with its own user namespace (<see cref="OverlayIdMap"/>) the layers are id-mapped, as
/// containerd 2.x does it: each layer folder is cloned into a detached mount (open_tree(2)
/// OPEN_TREE_CLONE) that shows its files through the pod's mapping (mount_setattr(2)
/// MOUNT_ATTR_IDMAP), so the image's root-owned files are the pod root's (host uid = the mapping's
/// for 0) and show as 0:0 inside, with nothing copied or chowned. overlayfs takes those detached
/// mounts as lower layers by their /proc/self/fd names (it keeps private clones of its layers;
/// a detached mount is accepted as one since Linux 6.15, "fs: support detached mounts in
/// clone_private_mount()"): the mounting thread works in /proc/self/fd and names the layers by
/// their descriptor numbers, which also keeps the option string short. The descriptors are closed
/// once the overlay is mounted, so no id-mapped mount is ever attached anywhere: a daemon killed
/// at any point leaves only the overlay itself, which recovery and Remove unmount as before. The
/// writable layer is chowned to the pod's root: overlayfs creates files as the caller (mapped)
/// but the upper folder is the rootfs's own "/".
/// </remarks>
public static class OverlayMount
{
    private const long OverlayfsSuperMagic = 0x794c7630;

    /// <summary>overlayfs's OVL_MAX_STACK.</summary>
    public const int MaxLayers = 500;

    /// <summary>
    /// Mounts the overlay at <paramref name="target"/> (an existing, empty folder).
    /// </summary>
    /// <param name="lowerDirs">the image's layer folders, top-most first (overlayfs lowerdir order).</param>
    /// <param name="upperDir">the container's writable layer: an existing folder on a filesystem overlayfs accepts as upper (not an overlay).</param>
    /// <param name="workDir">overlayfs's work folder: existing, empty, on the same filesystem as <paramref name="upperDir"/>.</param>
    /// <param name="linksDir">a folder to create for the layers' short names when their absolute paths do not fit in the options' page; it must not exist yet.</param>
    /// <param name="idMap">the pod's user namespace, for id-mapped layers; null for the host's ids.</param>
    /// <exception cref="ArgumentException">a path is relative or holds a character the option string cannot carry.</exception>
    /// <exception cref="IOException">the mount failed (the message names the syscall, the target and the errno).</exception>
    public static void Mount(string target, IReadOnlyList<string> lowerDirs, string upperDir, string workDir, string linksDir, OverlayIdMap? idMap = null)
    {
        ArgumentNullException.ThrowIfNull(lowerDirs);
        if (lowerDirs.Count is 0 or > MaxLayers)
            throw new ArgumentException($"an overlay takes 1 to {MaxLayers} lower layers, not {lowerDirs.Count}", nameof(lowerDirs));
        foreach (var path in lowerDirs.Append(target).Append(upperDir).Append(workDir).Append(linksDir))
        {
            if (!Path.IsPathFullyQualified(path))
                throw new ArgumentException($"\"{path}\" is not an absolute path");
            // overlayfs splits its options at ',' and its layers at ':' (a backslash escapes them,
            // but a path that needs escaping here is not one crid made).
            if (path.IndexOfAny([',', ':', '\\', '\0']) >= 0)
                throw new ArgumentException($"\"{path}\" holds ',', ':', '\\' or NUL, which an overlay's options cannot carry");
        }

        if (idMap is not null)
        {
            MountIdMapped(target, lowerDirs, upperDir, workDir, idMap);
            return;
        }

        // The common case (a few layers): the absolute paths fit in the page, and the mount runs
        // here, with no links and no thread of its own.
        var direct = BuildOptions(string.Join(':', lowerDirs), upperDir, workDir);
        if (FitsInPage(direct))
        {
            if (Interop.Mount("overlay", target, "overlay", 0, direct) != 0)
                throw Interop.Error("mount", target, "overlay " + direct);
            return;
        }

        Directory.CreateDirectory(linksDir);
        var names = new StringBuilder();
        for (var i = 0; i < lowerDirs.Count; i++)
        {
            var name = i.ToString(System.Globalization.CultureInfo.InvariantCulture);
            var link = Path.Combine(linksDir, name);
            if (File.Exists(link) || new FileInfo(link).LinkTarget is not null)
                File.Delete(link);
            File.CreateSymbolicLink(link, lowerDirs[i]);
            names.Append(i == 0 ? "" : ":").Append(name);
        }

        var options = Options(target, names.ToString(), upperDir, workDir);
        OnMountThread(() => MountFrom(linksDir, target, options));
    }

    private static string Options(string target, string lowerNames, string upperDir, string workDir)
    {
        var options = BuildOptions(lowerNames, upperDir, workDir);
        if (!FitsInPage(options))
            throw new IOException($"mount overlay {target}: the options take more than a page ({options.Length} bytes)");
        return options;
    }

    private static string BuildOptions(string lowerNames, string upperDir, string workDir)
    {
        var options = $"lowerdir={lowerNames},upperdir={upperDir},workdir={workDir}";
        // Where the kernel indexes by default, two containers of one image would fight over the
        // lower layers' index entries; containerd turns it off the same way.
        if (ReadParameter("index") == "Y")
            options += ",index=off";
        return options;
    }

    /// <summary>True when the option string fits in the page mount(2) copies (with its NUL).</summary>
    private static bool FitsInPage(string options) => Encoding.UTF8.GetByteCount(options) <= 4095;

    private static void OnMountThread(Func<Exception?> mount)
    {
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                failure = mount();
            }
            catch (Exception e)
            {
                failure = e;
            }
        }) { IsBackground = true, Name = "crid overlay mount" };
        thread.Start();
        thread.Join();
        if (failure is not null)
            throw failure;
    }

    /// <summary>The overlay over id-mapped detached clones of the layers (see the remarks).</summary>
    private static void MountIdMapped(string target, IReadOnlyList<string> lowerDirs, string upperDir, string workDir, OverlayIdMap idMap)
    {
        using var userns = Interop.OpenChecked(idMap.UserNamespacePath, O_RDONLY | O_CLOEXEC, step: "the pod's user namespace for id-mapped layers");
        Interop.CheckIo(Interop.LChown(upperDir, idMap.RootUid, idMap.RootGid), "lchown", upperDir, "own the writable layer as the pod's root");
        var trees = new List<SafeFd>(lowerDirs.Count);
        try
        {
            var names = new StringBuilder();
            foreach (var lower in lowerDirs)
            {
                var tree = Interop.OpenTree(lower, Interop.OPEN_TREE_CLONE | Interop.OPEN_TREE_CLOEXEC);
                if (tree.IsInvalid)
                    throw Interop.Error("open_tree", lower, "clone the layer for an id-mapped mount");
                trees.Add(tree);
                if (Interop.MountSetIdmap(tree, userns) != 0)
                    throw Interop.Error("mount_setattr", lower, "id-map the layer to " + idMap.UserNamespacePath);
                names.Append(names.Length == 0 ? "" : ":").Append(tree.DangerousGetHandle().ToInt32().ToString(System.Globalization.CultureInfo.InvariantCulture));
            }
            var options = Options(target, names.ToString(), upperDir, workDir);
            OnMountThread(() => MountFrom("/proc/self/fd", target, options));
        }
        catch (SyscallException e) when (e.Syscall == "mount" && e.Errno == EINVAL)
        {
            // The likely cause, named for the operator: before 6.15 overlayfs refuses detached
            // mounts as layers with EINVAL, and nothing else in this mount differs from a plain one.
            throw new SyscallException(e.Message + " (id-mapped layers for a user-namespaced pod need Linux 6.15 or later)", e.Errno, e.Syscall, e.Path);
        }
        finally
        {
            foreach (var tree in trees)
                tree.Dispose();
        }
    }

    /// <summary>Runs on its own thread: a private working directory, then the mount with relative layer names (links in <paramref name="linksDir"/>, or descriptors in /proc/self/fd).</summary>
    private static unsafe Exception? MountFrom(string linksDir, string target, string options)
    {
        if (unshare(CLONE_FS) != 0)
            return Interop.Error("unshare", linksDir, "a private working directory for the overlay mount");
        int fd;
        fixed (byte* p = Interop.Utf8Z(linksDir))
            fd = open(p, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
            return Interop.Error("open", linksDir);
        try
        {
            if (fchdir(fd) != 0)
                return Interop.Error("fchdir", linksDir);
        }
        finally
        {
            close(fd);
        }
        // The options go into the exception's step: which layers and folders a refused mount named.
        if (Interop.Mount("overlay", target, "overlay", 0, options) != 0)
            return Interop.Error("mount", target, "overlay " + options);
        return null;
    }

    /// <summary>
    /// Unmounts the overlay at <paramref name="target"/>. Idempotent: a folder with nothing mounted
    /// (EINVAL) or no folder at all (ENOENT) is success. A mount still busy (a process of a
    /// container that is being torn down holds it) is detached instead (MNT_DETACH).
    /// </summary>
    public static void Unmount(string target)
    {
        if (!IsMounted(target))
            return;
        if (Interop.Umount2(target, 0) == 0)
            return;
        var e = Interop.LastErrno;
        if (e == EINVAL || e == ENOENT)
            return;
        if (e == EBUSY && Interop.Umount2(target, MNT_DETACH) == 0)
            return;
        throw Interop.Error("umount2", target);
    }

    /// <summary>An overlay is mounted exactly at <paramref name="target"/>.</summary>
    public static bool IsMounted(string target)
    {
        if (Interop.StatFsType(target, out long type) != 0 || type != OverlayfsSuperMagic)
            return false;
        // statfs(2) also says overlay for any folder inside a mounted overlay: only the mount point counts.
        var parent = Path.GetDirectoryName(target.TrimEnd('/'));
        if (parent is null)
            return true;
        return Interop.StatFsType(parent, out long parentType) != 0 || parentType != OverlayfsSuperMagic || MountsAt(target);
    }

    private static bool MountsAt(string target)
    {
        foreach (var line in File.ReadLines("/proc/self/mountinfo"))
        {
            var fields = line.Split(' ');
            if (fields.Length > 4 && fields[4] == target)
                return true;
        }
        return false;
    }

    private static string? ReadParameter(string name)
    {
        try
        {
            return File.ReadAllText($"/sys/module/overlay/parameters/{name}").Trim();
        }
        catch (IOException)
        {
            return null;
        }
    }
}

/// <summary>
/// Id-mapped layers for a pod with its own user namespace: the pin of that namespace, and the host
/// ids its root (container uid and gid 0) maps to, which own the writable layer.
/// </summary>
public sealed record OverlayIdMap(string UserNamespacePath, uint RootUid, uint RootGid);
