/*  matterlink CLI: which events e-mail whom, per firm (docs/mail.md, "Notifications"). The
    same settings staff administrators change on /staff/notifications.
 */
#include "ml_cli.h"

#define S_EVENTS "autopay_failed|posting_rejected|link_paid|payment_received|agent_offline"

static const ml_cli_option_t o_event =
    ML_CLI_CHOICE ("--event", "EVENT", 32, "event", S_EVENTS, "the event to change");
static const ml_cli_option_t o_on = ML_CLI_SWITCH ("--on", NULL, "mail this event");
static const ml_cli_option_t o_off = ML_CLI_SWITCH ("--off", NULL, "mail nobody about it");
static const ml_cli_option_t o_to = ML_CLI_STRING (
    "--to", "ADDRESSES", 4000, "recipients",
    "who gets it, addresses separated by commas (\"\": the firm's contact address; left out: "
    "the addresses it has now)");
static const ml_cli_option_t o_minutes = ML_CLI_WHOLE (
    "--minutes", "N", 1, 10080, "minutes", "agent_offline: mail after N minutes away, 1 to 10080");

static const ml_cli_column_t s_columns[] = {{"Event", "event", 0, 0, 0},
                                            {"On", "on", 0, 0, 0},
                                            {"Sends to", "sends", 0, 0, 48},
                                            {"Minutes", "minutes", ML_CLI_RIGHT, 0, 0},
                                            {"Changed by", "updated_by", 0, 0, 24},
                                            {"Changed at", "updated_at", 0, 0, 0}};

//  A list of addresses as one text, ", " between them.
static void s_join (json_t *list, char *text, size_t size)
{
    *text = 0;
    size_t index;
    json_t *entry;
    json_array_foreach (list, index, entry)
    {
        size_t used = strlen (text);
        snprintf (text + used, size - used, "%s%s", index ? ", " : "", json_string_value (entry));
    }
}

static int s_print_settings (ml_cli_t *cli, const ml_cli_args_t *args, json_t *reply)
{
    json_t *shown = json_array ();
    size_t index;
    json_t *event;
    json_array_foreach (json_object_get (reply, "events"), index, event)
    {
        char sends[4000];
        s_join (json_object_get (event, "sends_to"), sends, sizeof sends);
        json_t *row = json_pack ("{s:s, s:s, s:s}", "event", ml_cli_text (event, "event"), "on",
                                 json_is_true (json_object_get (event, "enabled")) ? "yes" : "no",
                                 "sends", *sends ? sends : "nobody");
        json_t *minutes = json_object_get (event, "minutes");
        char number[32];
        json_object_set_new (
            row, "minutes",
            json_string (minutes ? ml_cli_integer_text (minutes, number, sizeof number) : ""));
        json_object_set (row, "updated_by", json_object_get (event, "updated_by"));
        json_object_set (row, "updated_at", json_object_get (event, "updated_at"));
        json_array_append_new (shown, row);
    }
    json_t *display = ml_cli_display (shown);
    ML_CLI_TABLE (display, s_columns, 0);
    json_decref (display);
    json_decref (shown);
    printf ("Mail with no address of its own goes to the firm's contact address: %s\n",
            *ml_cli_text (reply, "contact") ? ml_cli_text (reply, "contact")
                                            : "none set ('matterlink firm contact')");
    return 0;
}

//  --on or --off, exactly one; without --to the event keeps the addresses it has (the op
//  takes the whole setting, so they are read first).
static int s_prepare_set (ml_cli_t *cli, const ml_cli_args_t *args, json_t *request)
{
    bool on = ml_cli_arg (args, "--on") != NULL, off = ml_cli_arg (args, "--off") != NULL;
    if (on == off) {
        ml_cli_usage_error (args->command, "say --on or --off");
        return ML_CLI_EXIT_USAGE;
    }
    json_object_set_new (request, "enabled", json_boolean (on));
    if (ml_cli_arg (args, "--to"))
        return 0;
    json_t *reply = NULL;
    int code = ml_cli_ask (cli,
                           json_pack ("{s:s, s:O}", "op", "notify-settings", "firm",
                                      json_object_get (request, "firm")),
                           0, NULL, &reply);
    if (code)
        return code;
    const char *event = json_string_value (json_object_get (request, "event"));
    size_t index;
    json_t *entry;
    json_array_foreach (json_object_get (reply, "events"), index,
                        entry) if (streq (ml_cli_text (entry, "event"), event))
    {
        char recipients[4000];
        s_join (json_object_get (entry, "recipients"), recipients, sizeof recipients);
        json_object_set_new (request, "recipients", json_string (recipients));
    }
    json_decref (reply);
    return 0;
}

const ml_cli_command_t ml_cli_notify_commands[] = {
    {.name = "notify show",
     .op = "notify-settings",
     .synopsis = "[--firm F]",
     .summary = "which events e-mail whom",
     .flags = ML_CLI_NEEDS_FIRM,
     .options = {&ml_cli_opt_firm},
     .print = s_print_settings},
    {.name = "notify set",
     .op = "notify-set",
     .synopsis = "[--firm F] --event EVENT (--on | --off) [--to ADDRESSES] [--minutes N]",
     .summary = "turn an event's mail on or off, and say who gets it",
     .flags = ML_CLI_NEEDS_FIRM | ML_CLI_SENDS_STAFF,
     .options = {&ml_cli_opt_firm, &o_event, &o_on, &o_off, &o_to, &o_minutes},
     .required = "--event",
     .prepare = s_prepare_set,
     .print = s_print_settings,
     .unanswered = "the setting may have changed (running the command again is harmless): "
                   "check with 'matterlink notify show'"},
    {.name = NULL}};
