/** An ISO 8601 UTC rendering of a timestamptz column, in SQL (NULL stays NULL). */
export const isoSql = (col: string) => `to_char(${col} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;
