/*  ml_db_pg_tally: a PostgreSQL connection's round trips counted by statement, when
    ML_DB_PG_TALLY names a file (core/store/ml_db_pg_internal.h). Off, it costs an increment.
*/
#include "ml_db_pg_internal.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>

void ml_db_pg_tally (ml_db_t *self, const char *sql, bool riding)
{
    if (!riding)
        self->round_trips++;
    zhashx_t *tally = ML_DB_PG_CONN (self)->tally;
    if (!tally)
        return;
    char key[256];
    if (riding)
        snprintf (key, sizeof key, "(with the next) %s", sql);
    size_t *count = (size_t *)zhashx_lookup (tally, riding ? key : sql);
    if (!count) {
        count = calloc (1, sizeof (size_t));
        assert (count);
        zhashx_insert (tally, riding ? key : sql, count);
    }
    (*count)++;
}

static int s_compare (const void *item1, const void *item2)
{
    size_t count1 = *(const size_t *)item1, count2 = *(const size_t *)item2;
    return count1 < count2 ? 1 : count1 > count2 ? -1 : 0;
}

void ml_db_pg_tally_close (zhashx_t **tally_p)
{
    zhashx_t *tally = *tally_p;
    if (!tally)
        return;
    size_t total = 0;
    zlistx_t *counts = zlistx_new ();
    zlistx_set_comparator (counts, s_compare);
    for (size_t *count = (size_t *)zhashx_first (tally); count;
         count = (size_t *)zhashx_next (tally)) {
        if (strncmp ((const char *)zhashx_cursor (tally), "(with the next) ", 16) != 0)
            total += *count;
        zlistx_add_end (counts, count);
    }
    zlistx_sort (counts);
    FILE *file = total >= 1000 ? fopen (getenv ("ML_DB_PG_TALLY"), "a") : NULL;
    if (file) {
        fprintf (file, "ml_db_pg tally: %zu round trips\n", total);
        for (size_t *count = (size_t *)zlistx_first (counts); count;
             count = (size_t *)zlistx_next (counts)) {
            //  the key of this count
            for (size_t *item = (size_t *)zhashx_first (tally); item;
                 item = (size_t *)zhashx_next (tally))
                if (item == count) {
                    fprintf (file, "%10zu  %.200s\n", *count, (const char *)zhashx_cursor (tally));
                    break;
                }
        }
        fclose (file);
    }
    zlistx_destroy (&counts);
    zhashx_destroy (tally_p);
}
