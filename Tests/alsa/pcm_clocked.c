/*
 * A capture device for the fault tests: an alsa-lib external (ioplug) PCM whose hardware pointer
 * runs on the monotonic clock, as a sound card's does, playing a raw S16_LE mono 16 kHz file in a
 * loop. Unlike the `file` plugin over `null`, it overruns: a reader that falls more than a buffer
 * behind gets -EPIPE from alsa-lib, as it would from real hardware. While the file named by
 * `stall_file` exists the clock stands still, so the device delivers nothing (a stalled source).
 *
 *   pcm_type.clocked { lib "/path/libasound_module_pcm_clocked.so" }
 *   pcm.test { type clocked; file "/path/audio.raw"; stall_file "/path/stall" }
 *
 * Built by the tests: cc -shared -fPIC -o libasound_module_pcm_clocked.so pcm_clocked.c -lasound
 */
#include <alsa/asoundlib.h>
#include <alsa/pcm_external.h>
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

enum { RATE = 16000 };

typedef struct {
    snd_pcm_ioplug_t io;
    int16_t *audio;              /* the looped recording */
    size_t audio_frames;
    size_t next_frame;           /* where the next transfer reads from */
    char *stall_file;
    uint64_t last_ns;            /* clock at the previous pointer update */
    uint64_t running_ns;         /* time the clock has run since start, stalls excluded */
} clocked_t;

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* Frames the "hardware" has captured since start. */
static snd_pcm_uframes_t captured(clocked_t *c) {
    uint64_t now = now_ns();
    if (access(c->stall_file, F_OK) != 0) c->running_ns += now - c->last_ns;
    c->last_ns = now;
    return (snd_pcm_uframes_t)(c->running_ns * RATE / 1000000000u);
}

static int clocked_start(snd_pcm_ioplug_t *io) {
    clocked_t *c = io->private_data;
    c->last_ns = now_ns();
    c->running_ns = 0;
    struct itimerspec every = {0};
    every.it_interval.tv_nsec = every.it_value.tv_nsec = (long)(io->period_size * 1000000000u / RATE);
    return timerfd_settime(io->poll_fd, 0, &every, NULL) < 0 ? -errno : 0;
}

static int clocked_stop(snd_pcm_ioplug_t *io) {
    struct itimerspec off = {0};
    return timerfd_settime(io->poll_fd, 0, &off, NULL) < 0 ? -errno : 0;
}

/* The hardware position within the buffer, or -EPIPE once the reader is a buffer behind. */
static snd_pcm_sframes_t clocked_pointer(snd_pcm_ioplug_t *io) {
    clocked_t *c = io->private_data;
    snd_pcm_uframes_t hw = captured(c);
    if (hw - io->appl_ptr >= io->buffer_size) return -EPIPE;
    return (snd_pcm_sframes_t)(hw % io->buffer_size);
}

static snd_pcm_sframes_t clocked_transfer(snd_pcm_ioplug_t *io, const snd_pcm_channel_area_t *areas,
                                          snd_pcm_uframes_t offset, snd_pcm_uframes_t size) {
    clocked_t *c = io->private_data;
    int16_t *out = (int16_t *)((char *)areas->addr + (areas->first + areas->step * offset) / 8);
    for (snd_pcm_uframes_t i = 0; i < size; i++) {
        out[i] = c->audio[c->next_frame];
        c->next_frame = (c->next_frame + 1) % c->audio_frames;
    }
    return (snd_pcm_sframes_t)size;
}

/* The timer is the period interrupt, running only while the stream does; like a sound card's
 * driver, a stream that is merely prepared never becomes readable: the reader must start it. */
static int clocked_poll_revents(snd_pcm_ioplug_t *io, struct pollfd *pfd, unsigned int nfds, unsigned short *revents) {
    uint64_t ticks;
    if (nfds == 1 && (pfd->revents & POLLIN)) (void)!read(io->poll_fd, &ticks, sizeof ticks);
    if (io->state == SND_PCM_STATE_XRUN) *revents = POLLERR;
    else if (io->state != SND_PCM_STATE_RUNNING) *revents = 0;
    else *revents = clocked_pointer(io) < 0 || captured(io->private_data) - io->appl_ptr >= io->period_size ? POLLIN : 0;
    return 0;
}

static int clocked_close(snd_pcm_ioplug_t *io) {
    clocked_t *c = io->private_data;
    close(io->poll_fd);
    free(c->audio);
    free(c->stall_file);
    free(c);
    return 0;
}

static const snd_pcm_ioplug_callback_t callbacks = {
    .start = clocked_start,
    .stop = clocked_stop,
    .pointer = clocked_pointer,
    .transfer = clocked_transfer,
    .poll_revents = clocked_poll_revents,
    .close = clocked_close,
};

static int load(clocked_t *c, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) { SNDERR("clocked: cannot open %s", path); return -errno; }
    fseek(f, 0, SEEK_END);
    long bytes = ftell(f);
    fseek(f, 0, SEEK_SET);
    c->audio_frames = bytes > 0 ? (size_t)bytes / 2 : 0;
    c->audio = malloc(c->audio_frames * 2 + 2);
    size_t got = c->audio && c->audio_frames ? fread(c->audio, 2, c->audio_frames, f) : 0;
    fclose(f);
    if (got == 0) { SNDERR("clocked: %s holds no samples", path); return -EINVAL; }
    c->audio_frames = got;
    return 0;
}

SND_PCM_PLUGIN_DEFINE_FUNC(clocked) {
    const char *file = NULL, *stall = "/nonexistent";
    snd_config_iterator_t i, next;
    snd_config_for_each(i, next, conf) {
        snd_config_t *n = snd_config_iterator_entry(i);
        const char *id;
        if (snd_config_get_id(n, &id) < 0 || !strcmp(id, "type") || !strcmp(id, "comment")) continue;
        if (!strcmp(id, "file")) { snd_config_get_string(n, &file); continue; }
        if (!strcmp(id, "stall_file")) { snd_config_get_string(n, &stall); continue; }
        SNDERR("clocked: unknown field %s", id);
        return -EINVAL;
    }
    if (!file) { SNDERR("clocked: no file"); return -EINVAL; }
    if (stream != SND_PCM_STREAM_CAPTURE) return -EINVAL;

    clocked_t *c = calloc(1, sizeof *c);
    if (!c) return -ENOMEM;
    int err = load(c, file);
    if (err < 0) { free(c->audio); free(c); return err; }
    c->stall_file = strdup(stall);
    c->io.version = SND_PCM_IOPLUG_VERSION;
    c->io.name = "equivd test clocked capture";
    c->io.callback = &callbacks;
    c->io.private_data = c;
    c->io.poll_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    c->io.poll_events = POLLIN;
    c->io.mmap_rw = 0;
    if ((err = snd_pcm_ioplug_create(&c->io, name, stream, mode)) < 0) {
        close(c->io.poll_fd); free(c->audio); free(c->stall_file); free(c);
        return err;
    }
    static const unsigned int access_list[] = {SND_PCM_ACCESS_RW_INTERLEAVED};
    static const unsigned int format_list[] = {SND_PCM_FORMAT_S16_LE};
    if ((err = snd_pcm_ioplug_set_param_list(&c->io, SND_PCM_IOPLUG_HW_ACCESS, 1, access_list)) < 0 ||
        (err = snd_pcm_ioplug_set_param_list(&c->io, SND_PCM_IOPLUG_HW_FORMAT, 1, format_list)) < 0 ||
        (err = snd_pcm_ioplug_set_param_minmax(&c->io, SND_PCM_IOPLUG_HW_CHANNELS, 1, 1)) < 0 ||
        (err = snd_pcm_ioplug_set_param_minmax(&c->io, SND_PCM_IOPLUG_HW_RATE, RATE, RATE)) < 0 ||
        (err = snd_pcm_ioplug_set_param_minmax(&c->io, SND_PCM_IOPLUG_HW_PERIOD_BYTES, 320, 32000)) < 0 ||
        (err = snd_pcm_ioplug_set_param_minmax(&c->io, SND_PCM_IOPLUG_HW_PERIODS, 2, 16)) < 0) {
        snd_pcm_ioplug_delete(&c->io);
        return err;
    }
    *pcmp = c->io.pcm;
    return 0;
}

SND_PCM_PLUGIN_SYMBOL(clocked);
