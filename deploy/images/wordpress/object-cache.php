<?php
/**
 * ShopHosting object cache: WordPress's object cache kept in the store's own Redis (phpredis).
 *
 * Installed as wp-content/object-cache.php by the platform's images (deploy/images/wordpress and
 * wordpress-official); an operator who replaces it with another drop-in keeps theirs, since the local
 * image's entrypoint refreshes only a file that starts with this header.
 *
 * Configuration (wp-config.php, from the store's stack):
 *   WP_REDIS_HOST      the `cache` service on the store network (no constant: no Redis, memory only)
 *   WP_REDIS_PORT      6379
 *   WP_REDIS_DATABASE  the Redis database index, 0
 *   WP_REDIS_PREFIX    put before every key, one per store, so a shared Redis could never mix stores
 *   WP_REDIS_TIMEOUT, WP_REDIS_READ_TIMEOUT  seconds, 1 each
 *
 * Every value lives for the request in memory (as in core's WP_Object_Cache) and, unless its group is
 * non-persistent, in Redis. If Redis does not answer, at connection or on any later command, the rest
 * of the request runs on the memory cache alone: the store never goes down because its cache is down.
 *
 * Keys: <prefix><site>:<group>:<key>, where <site> is the blog id, or "global" for global groups.
 * Integers are stored as plain decimal strings (so incr/decr are atomic in Redis); every other value
 * is PHP-serialized, whose output never looks like a plain integer.
 */

defined('ABSPATH') || exit;

function wp_cache_init() {
	$GLOBALS['wp_object_cache'] = new WP_Object_Cache();
}

function wp_cache_add($key, $data, $group = '', $expire = 0) {
	global $wp_object_cache;
	return $wp_object_cache->add($key, $data, $group, (int) $expire);
}

function wp_cache_add_multiple(array $data, $group = '', $expire = 0) {
	global $wp_object_cache;
	return $wp_object_cache->add_multiple($data, $group, (int) $expire);
}

function wp_cache_replace($key, $data, $group = '', $expire = 0) {
	global $wp_object_cache;
	return $wp_object_cache->replace($key, $data, $group, (int) $expire);
}

function wp_cache_set($key, $data, $group = '', $expire = 0) {
	global $wp_object_cache;
	return $wp_object_cache->set($key, $data, $group, (int) $expire);
}

function wp_cache_set_multiple(array $data, $group = '', $expire = 0) {
	global $wp_object_cache;
	return $wp_object_cache->set_multiple($data, $group, (int) $expire);
}

function wp_cache_get($key, $group = '', $force = false, &$found = null) {
	global $wp_object_cache;
	return $wp_object_cache->get($key, $group, $force, $found);
}

function wp_cache_get_multiple($keys, $group = '', $force = false) {
	global $wp_object_cache;
	return $wp_object_cache->get_multiple($keys, $group, $force);
}

function wp_cache_delete($key, $group = '') {
	global $wp_object_cache;
	return $wp_object_cache->delete($key, $group);
}

function wp_cache_delete_multiple(array $keys, $group = '') {
	global $wp_object_cache;
	return $wp_object_cache->delete_multiple($keys, $group);
}

function wp_cache_incr($key, $offset = 1, $group = '') {
	global $wp_object_cache;
	return $wp_object_cache->incr($key, $offset, $group);
}

function wp_cache_decr($key, $offset = 1, $group = '') {
	global $wp_object_cache;
	return $wp_object_cache->decr($key, $offset, $group);
}

function wp_cache_flush() {
	global $wp_object_cache;
	return $wp_object_cache->flush();
}

function wp_cache_flush_runtime() {
	global $wp_object_cache;
	return $wp_object_cache->flush_runtime();
}

function wp_cache_flush_group($group) {
	global $wp_object_cache;
	return $wp_object_cache->flush_group($group);
}

function wp_cache_supports($feature) {
	return in_array(
		$feature,
		array('add_multiple', 'set_multiple', 'get_multiple', 'delete_multiple', 'flush_runtime', 'flush_group'),
		true
	);
}

function wp_cache_close() {
	return true;
}

function wp_cache_add_global_groups($groups) {
	global $wp_object_cache;
	$wp_object_cache->add_global_groups($groups);
}

function wp_cache_add_non_persistent_groups($groups) {
	global $wp_object_cache;
	$wp_object_cache->add_non_persistent_groups($groups);
}

function wp_cache_switch_to_blog($blog_id) {
	global $wp_object_cache;
	$wp_object_cache->switch_to_blog($blog_id);
}

function wp_cache_reset() {
	_deprecated_function(__FUNCTION__, '3.5.0', 'wp_cache_switch_to_blog()');
	global $wp_object_cache;
	$wp_object_cache->reset();
}

class WP_Object_Cache {
	// Atomic in Redis, with core's semantics: false when the key is missing, a non-integer counts as 0,
	// never below 0, and the key keeps its expiry.
	const INCR_SCRIPT = <<<'LUA'
local value = redis.call('GET', KEYS[1])
if not value then return false end
local number = 0
if string.match(value, '^-?%d+$') then number = tonumber(value) end
number = number + tonumber(ARGV[1])
if number < 0 then number = 0 end
redis.call('SET', KEYS[1], string.format('%d', number), 'KEEPTTL')
return number
LUA;

	public $cache_hits = 0;
	public $cache_misses = 0;
	public $redis_calls = 0;

	/** @var array<string, mixed> the request's copy, by full key */
	private $cache = array();
	private $global_groups = array();
	private $non_persistent_groups = array();
	private $blog_prefix = '1';
	private $multisite = false;
	private $prefix = '';
	/** @var Redis|null null when there is no Redis, or it stopped answering during this request */
	private $redis = null;

	public function __construct() {
		$this->multisite = function_exists('is_multisite') && is_multisite();
		$this->blog_prefix = $this->multisite ? (string) get_current_blog_id() : '1';
		$this->prefix = defined('WP_REDIS_PREFIX') ? (string) WP_REDIS_PREFIX : '';
		$this->connect();
	}

	private function connect() {
		if (!defined('WP_REDIS_HOST') || !class_exists('Redis')) {
			return;
		}
		try {
			$redis = new Redis();
			$timeout = defined('WP_REDIS_TIMEOUT') ? (float) WP_REDIS_TIMEOUT : 1.0;
			$port = defined('WP_REDIS_PORT') ? (int) WP_REDIS_PORT : 6379;
			if (!$redis->connect(WP_REDIS_HOST, $port, $timeout)) {
				return;
			}
			$redis->setOption(Redis::OPT_READ_TIMEOUT, defined('WP_REDIS_READ_TIMEOUT') ? (float) WP_REDIS_READ_TIMEOUT : 1.0);
			if (!$redis->select(defined('WP_REDIS_DATABASE') ? (int) WP_REDIS_DATABASE : 0)) {
				return;
			}
			$this->redis = $redis;
		} catch (Exception $e) {
			$this->redis_failed($e);
		}
	}

	/** Memory only from here on, for the rest of this request; the next request tries Redis again. */
	private function redis_failed($exception) {
		$this->redis = null;
		error_log('ShopHosting object cache: Redis unavailable, using memory only: ' . $exception->getMessage());
	}

	/** Whether Redis is in use for this request (false: the memory cache alone). */
	public function redis_connected() {
		return null !== $this->redis;
	}

	private function key($key, $group) {
		$site = isset($this->global_groups[$group]) ? 'global' : $this->blog_prefix;
		return $this->prefix . $site . ':' . $group . ':' . $key;
	}

	private function persistent($group) {
		return null !== $this->redis && !isset($this->non_persistent_groups[$group]);
	}

	private static function group($group) {
		return ('' === $group || null === $group) ? 'default' : (string) $group;
	}

	private static function valid_key($key) {
		if (is_int($key) || (is_string($key) && '' !== trim($key))) {
			return true;
		}
		if (function_exists('_doing_it_wrong')) {
			_doing_it_wrong('WP_Object_Cache', 'Cache key must be an integer or a non-empty string.', '6.1.0');
		}
		return false;
	}

	private static function encode($data) {
		return is_int($data) ? (string) $data : serialize($data);
	}

	private static function decode($raw) {
		if (preg_match('/^-?\d+\z/', $raw)) {
			return (int) $raw;
		}
		return unserialize($raw);
	}

	/** The request's copy is separate from the caller's: objects are cloned, as core does. */
	private static function copy($data) {
		return is_object($data) ? clone $data : $data;
	}

	/** Runs one Redis command; on any Redis error, falls back to memory and returns $failed. */
	private function call($callback, $failed = false) {
		try {
			++$this->redis_calls;
			return $callback($this->redis);
		} catch (Exception $e) {
			$this->redis_failed($e);
			return $failed;
		}
	}

	private function store($full, $data, $expire, array $condition = array()) {
		$options = $condition;
		if ($expire > 0) {
			$options['ex'] = $expire;
		}
		$raw = self::encode($data);
		return (bool) $this->call(function ($redis) use ($full, $raw, $options) {
			return $options ? $redis->set($full, $raw, $options) : $redis->set($full, $raw);
		});
	}

	public function add($key, $data, $group = 'default', $expire = 0) {
		if (function_exists('wp_suspend_cache_addition') && wp_suspend_cache_addition()) {
			return false;
		}
		if (!self::valid_key($key)) {
			return false;
		}
		$group = self::group($group);
		$full = $this->key($key, $group);
		if (array_key_exists($full, $this->cache)) {
			return false;
		}
		if ($this->persistent($group)) {
			$added = $this->store($full, $data, $expire, array('nx'));
			if (!$added && null !== $this->redis) {
				return false; // another request holds this key
			}
		}
		$this->cache[$full] = self::copy($data);
		return true;
	}

	public function add_multiple(array $data, $group = '', $expire = 0) {
		$results = array();
		foreach ($data as $key => $value) {
			$results[$key] = $this->add($key, $value, $group, $expire);
		}
		return $results;
	}

	public function replace($key, $data, $group = 'default', $expire = 0) {
		if (!self::valid_key($key)) {
			return false;
		}
		$group = self::group($group);
		$full = $this->key($key, $group);
		if ($this->persistent($group)) {
			$replaced = $this->store($full, $data, $expire, array('xx'));
			if (!$replaced && null !== $this->redis) {
				unset($this->cache[$full]); // gone from Redis: the request's copy is stale
				return false;
			}
		} elseif (!array_key_exists($full, $this->cache)) {
			return false;
		}
		$this->cache[$full] = self::copy($data);
		return true;
	}

	public function set($key, $data, $group = 'default', $expire = 0) {
		if (!self::valid_key($key)) {
			return false;
		}
		$group = self::group($group);
		$full = $this->key($key, $group);
		$this->cache[$full] = self::copy($data);
		if ($this->persistent($group)) {
			$this->store($full, $data, $expire);
		}
		return true;
	}

	public function set_multiple(array $data, $group = '', $expire = 0) {
		$group = self::group($group);
		$results = array();
		$writes = array();
		foreach ($data as $key => $value) {
			if (!self::valid_key($key)) {
				$results[$key] = false;
				continue;
			}
			$full = $this->key($key, $group);
			$this->cache[$full] = self::copy($value);
			$writes[$full] = self::encode($value);
			$results[$key] = true;
		}
		if ($writes && $this->persistent($group)) {
			$this->call(function ($redis) use ($writes, $expire) {
				$pipe = $redis->multi(Redis::PIPELINE);
				foreach ($writes as $full => $raw) {
					$expire > 0 ? $pipe->setex($full, $expire, $raw) : $pipe->set($full, $raw);
				}
				return $pipe->exec();
			});
		}
		return $results;
	}

	public function get($key, $group = 'default', $force = false, &$found = null) {
		if (!self::valid_key($key)) {
			$found = false;
			return false;
		}
		$group = self::group($group);
		$full = $this->key($key, $group);
		if (array_key_exists($full, $this->cache) && !($force && $this->persistent($group))) {
			$found = true;
			++$this->cache_hits;
			return self::copy($this->cache[$full]);
		}
		if ($this->persistent($group)) {
			$raw = $this->call(function ($redis) use ($full) {
				return $redis->get($full);
			});
			if (is_string($raw)) {
				$found = true;
				++$this->cache_hits;
				$this->cache[$full] = self::decode($raw);
				return self::copy($this->cache[$full]);
			}
			unset($this->cache[$full]); // forced, and gone from Redis
		}
		$found = false;
		++$this->cache_misses;
		return false;
	}

	public function get_multiple($keys, $group = 'default', $force = false) {
		$group = self::group($group);
		$values = array();
		$wanted = array();
		foreach ($keys as $key) {
			if (!self::valid_key($key)) {
				$values[$key] = false;
				continue;
			}
			$full = $this->key($key, $group);
			if (array_key_exists($full, $this->cache) && !($force && $this->persistent($group))) {
				++$this->cache_hits;
				$values[$key] = self::copy($this->cache[$full]);
			} else {
				$values[$key] = false;
				$wanted[$key] = $full;
			}
		}
		if (!$wanted) {
			return $values;
		}
		if ($this->persistent($group)) {
			$fulls = array_values($wanted);
			$raws = $this->call(function ($redis) use ($fulls) {
				return $redis->mget($fulls);
			});
			$raws = is_array($raws) ? array_combine(array_keys($wanted), $raws) : array();
			foreach ($wanted as $key => $full) {
				if (isset($raws[$key]) && is_string($raws[$key])) {
					++$this->cache_hits;
					$this->cache[$full] = self::decode($raws[$key]);
					$values[$key] = self::copy($this->cache[$full]);
					unset($wanted[$key]);
				}
			}
		}
		$this->cache_misses += count($wanted);
		return $values;
	}

	public function delete($key, $group = 'default', $deprecated = false) {
		if (!self::valid_key($key)) {
			return false;
		}
		$group = self::group($group);
		$full = $this->key($key, $group);
		$in_memory = array_key_exists($full, $this->cache);
		unset($this->cache[$full]);
		if ($this->persistent($group)) {
			$deleted = $this->call(function ($redis) use ($full) {
				return $redis->del($full);
			}, 0);
			return $deleted > 0 || $in_memory;
		}
		return $in_memory;
	}

	public function delete_multiple(array $keys, $group = '') {
		$results = array();
		foreach ($keys as $key) {
			$results[$key] = $this->delete($key, $group);
		}
		return $results;
	}

	public function incr($key, $offset = 1, $group = 'default') {
		return $this->increment($key, (int) $offset, $group);
	}

	public function decr($key, $offset = 1, $group = 'default') {
		return $this->increment($key, -(int) $offset, $group);
	}

	private function increment($key, $offset, $group) {
		if (!self::valid_key($key)) {
			return false;
		}
		$group = self::group($group);
		$full = $this->key($key, $group);
		if ($this->persistent($group)) {
			$number = $this->call(function ($redis) use ($full, $offset) {
				return $redis->eval(self::INCR_SCRIPT, array($full, $offset), 1);
			});
			if (null !== $this->redis) {
				if (false === $number) {
					unset($this->cache[$full]);
					return false;
				}
				$this->cache[$full] = (int) $number;
				return (int) $number;
			}
		}
		if (!array_key_exists($full, $this->cache)) {
			return false;
		}
		$number = is_numeric($this->cache[$full]) ? $this->cache[$full] + $offset : $offset;
		$this->cache[$full] = $number < 0 ? 0 : $number;
		return $this->cache[$full];
	}

	/** Deletes this store's keys only (by prefix), never the whole Redis database. */
	public function flush() {
		$this->cache = array();
		if (null === $this->redis) {
			return true;
		}
		return $this->delete_matching(self::glob_escape($this->prefix) . '*');
	}

	public function flush_runtime() {
		$this->cache = array();
		return true;
	}

	/** The group's keys of the current site (of every site for a global group). */
	public function flush_group($group) {
		$group = self::group($group);
		$stem = $this->key('', $group);
		foreach (array_keys($this->cache) as $full) {
			if (0 === strpos($full, $stem)) {
				unset($this->cache[$full]);
			}
		}
		if (!$this->persistent($group)) {
			return true;
		}
		return $this->delete_matching(self::glob_escape($stem) . '*');
	}

	private function delete_matching($pattern) {
		return (bool) $this->call(function ($redis) use ($pattern) {
			$redis->setOption(Redis::OPT_SCAN, Redis::SCAN_RETRY);
			$cursor = null;
			while (($keys = $redis->scan($cursor, $pattern, 1000)) !== false) {
				if ($keys) {
					$redis->unlink($keys);
				}
			}
			return true;
		});
	}

	private static function glob_escape($text) {
		return preg_replace('/([*?\[\]\\\\])/', '\\\\$1', $text);
	}

	public function add_global_groups($groups) {
		foreach ((array) $groups as $group) {
			$this->global_groups[$group] = true;
		}
	}

	public function add_non_persistent_groups($groups) {
		foreach ((array) $groups as $group) {
			$this->non_persistent_groups[$group] = true;
		}
	}

	public function switch_to_blog($blog_id) {
		$this->blog_prefix = $this->multisite ? (string) (int) $blog_id : '1';
	}

	/** Deprecated by core: forgets the request's copy of the current site's non-global groups. */
	public function reset() {
		$stem = $this->prefix . $this->blog_prefix . ':';
		foreach (array_keys($this->cache) as $full) {
			if (0 === strpos($full, $stem)) {
				unset($this->cache[$full]);
			}
		}
	}

	public function stats() {
		echo '<p><strong>Cache hits:</strong> ' . (int) $this->cache_hits . '<br />';
		echo '<strong>Cache misses:</strong> ' . (int) $this->cache_misses . '<br />';
		echo '<strong>Redis:</strong> ' . ($this->redis_connected() ? 'connected' : 'not in use, memory only') . '</p>';
	}
}
